"""How a request goes upstream: OpenAI-style providers get the client's own bytes when nothing
needs changing, and a rewritten body (model name, usage for streams) when something does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from signalbox_api.provider import LLMProviderSpec
from signalbox_router import upstream
from signalbox_router.snapshot import ProviderEntry

URL = "http://127.0.0.1:9/v1"


def entry(ptype: str = "OpenAICompatible", **spec: Any) -> ProviderEntry:
    doc = {"type": ptype, "endpoint": {"url": URL}, **spec}
    return ProviderEntry("p", LLMProviderSpec.model_validate(doc), (URL,), api_key="sk-secret")


def call(body: dict[str, Any], model: str, ptype: str = "OpenAICompatible") -> upstream.Call:
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2)  # not what orjson.dumps would send
    return upstream.build(entry(ptype), URL, "chat", body, model, raw=raw)


@pytest.mark.parametrize("ptype", ["OpenAI", "OpenAICompatible", "VLLM", "LocalAI"])
def test_an_unchanged_body_goes_as_the_client_sent_it(ptype: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "x_extra": 1}
    got = call(body, "m", ptype)
    assert got.data() == orjson.dumps(body, option=orjson.OPT_INDENT_2)
    assert got.url == URL + "/chat/completions"


def test_a_stream_that_already_asks_for_usage_goes_as_sent() -> None:
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    assert call(body, "m").raw is not None


@pytest.mark.parametrize(
    ("body", "model", "expected"),
    [
        ({"model": "alias", "messages": []}, "real", {"model": "real", "messages": []}),
        (
            {"model": "m", "messages": [], "stream": True},
            "m",
            {
                "model": "m",
                "messages": [],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
    ],
    ids=["renamed", "stream-usage-added"],
)
def test_a_changed_body_is_rewritten(
    body: dict[str, Any], model: str, expected: dict[str, Any]
) -> None:
    got = call(body, model)
    assert got.raw is None
    assert orjson.loads(got.data()) == expected
    assert body.get("stream_options") is None  # the client's body is left alone


def test_translated_calls_are_rebuilt_and_azure_takes_the_client_bytes() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert call(body, "m", "Anthropic").raw is None
    assert call(body, "m", "Ollama").raw is None
    raw = orjson.dumps(body)
    azure = upstream.build(
        entry("AzureOpenAI", azure={"apiVersion": "2024-10-21"}), URL, "chat", body, "m", raw=raw
    )
    assert azure.url.endswith("/openai/deployments/m/chat/completions?api-version=2024-10-21")
    assert azure.raw == raw  # Azure takes the OpenAI body as is


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        (b'{"model":"pricey","model":"m","messages":[]}', b'{"model":"m","messages":[]}'),
        (
            b'{"model":"m","stream":true,"stream":false,"messages":[]}',
            b'{"model":"m","stream":false,"messages":[]}',
        ),
    ],
    ids=["model", "stream"],
)
def test_a_body_naming_a_field_twice_is_sent_as_the_router_read_it(raw: bytes, sent: bytes) -> None:
    body = orjson.loads(raw)  # the router reads the last one
    got = upstream.build(entry(), URL, "chat", body, "m", raw=raw)
    assert got.raw is None
    assert got.data() == sent


def test_a_call_never_shows_its_headers() -> None:
    got = call({"model": "m", "messages": []}, "m")
    assert "sk-secret" in str(dict(got.headers))
    assert "sk-secret" not in repr(got)
