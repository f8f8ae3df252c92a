"""How a request goes upstream, per dialect: OpenAI-style providers get the client's own bytes
when nothing needs changing, and a rewritten body (model name, usage for streams) when something
does; a model name can never change a URL's path."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from signalbox_api.provider import LLMProviderSpec, ProviderType
from signalbox_providers import dialects, ingress
from signalbox_providers.dialects.base import RequestParts
from tests.support.router import tool_exchange

URL = "http://127.0.0.1:9/v1"
INDENTED = orjson.OPT_INDENT_2  # not what orjson.dumps would send


def build(
    body: dict[str, Any],
    model: str,
    ptype: str = "OpenAICompatible",
    raw: bytes | None = None,
    **spec: Any,
) -> dialects.Outbound:
    doc = LLMProviderSpec.model_validate({"type": ptype, "endpoint": {"url": URL}, **spec})
    dialect = dialects.dialect(doc.type)
    return dialect.request(RequestParts("chat", URL, body, model, dialect.options(doc), raw))


def call(body: dict[str, Any], model: str, ptype: str = "OpenAICompatible") -> dialects.Outbound:
    return build(body, model, ptype, raw=orjson.dumps(body, option=INDENTED))


def test_every_provider_type_has_a_dialect() -> None:
    assert set(dialects.DIALECTS) == set(ProviderType)


@pytest.mark.parametrize("ptype", ["OpenAI", "OpenAICompatible", "VLLM", "LocalAI"])
def test_an_unchanged_body_goes_as_the_client_sent_it(ptype: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "x_extra": 1}
    got = call(body, "m", ptype)
    assert got.data == orjson.dumps(body, option=INDENTED)
    assert got.url == URL + "/chat/completions"


def test_a_stream_that_already_asks_for_usage_goes_as_sent() -> None:
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    assert call(body, "m").data == orjson.dumps(body, option=INDENTED)


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
    assert orjson.loads(got.data) == expected
    assert body.get("stream_options") is None  # the client's body is left alone


def test_translated_calls_are_rebuilt_and_azure_takes_the_client_bytes() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert call(body, "m", "Anthropic").data != orjson.dumps(body, option=INDENTED)
    assert call(body, "m", "Ollama").data != orjson.dumps(body, option=INDENTED)
    raw = orjson.dumps(body, option=INDENTED)
    azure = build(body, "m", "AzureOpenAI", raw, azure={"apiVersion": "2024-10-21"})
    assert azure.url.endswith("/openai/deployments/m/chat/completions?api-version=2024-10-21")
    assert azure.data == raw  # Azure takes the OpenAI body as is


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
    assert build(body, "m", raw=raw).data == sent


@pytest.mark.parametrize(
    ("model", "segment"),
    [("gpt/4o", "gpt%2F4o"), ("a b?c#d", "a%20b%3Fc%23d"), ("%2e%2e", "%252e%252e")],
)
def test_an_azure_deployment_name_is_one_escaped_path_segment(model: str, segment: str) -> None:
    got = build({"model": model, "messages": []}, model, "AzureOpenAI")
    assert got.url == f"http://127.0.0.1:9/openai/deployments/{segment}/chat/completions" + (
        "?api-version=2024-10-21"
    )


@pytest.mark.parametrize("model", ["..", ".", "", "a\nb"])
def test_a_model_name_that_would_move_the_path_is_refused(model: str) -> None:
    with pytest.raises(dialects.Unsupported, match="URL path"):
        build({"model": model, "messages": []}, model, "AzureOpenAI")


def test_a_body_too_deep_to_encode_is_unsupported_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(400):
        deep = [deep]
    with pytest.raises(dialects.Unsupported, match="cannot be encoded"):
        build({"model": "m", "messages": [{"role": "user", "content": deep}]}, "other")


def test_an_http_call_never_shows_its_headers() -> None:
    dialect = dialects.dialect(ProviderType.ANTHROPIC)
    got = dialect.list_models(URL, "sk-secret")
    assert got.headers["x-api-key"] == "sk-secret"
    assert "sk-secret" not in repr(got)


DEEP = "[" * 50_000 + "]" * 50_000  # past Python's recursion limit


@pytest.mark.parametrize("ptype", ["Anthropic", "Ollama"])
@pytest.mark.parametrize("arguments", [DEEP, "{not json", "[1]"], ids=["deep", "bad", "list"])
def test_tool_arguments_that_are_no_json_object_are_the_clients_error(
    ptype: str, arguments: str
) -> None:
    with pytest.raises(dialects.TranslationError, match="tool call arguments"):
        build({"model": "m", "messages": tool_exchange(arguments)}, "m", ptype)


def test_an_anthropic_answer_nested_too_deep_is_invalid() -> None:
    deep = "[" * 990 + "1" + "]" * 990  # within what orjson reads, past what json writes
    block = '{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": ' + deep + "}}"
    raw = ('{"id": "m1", "type": "message", "usage": {}, "content": [' + block + "]}").encode()
    with pytest.raises(dialects.InvalidAnswer):
        dialects.dialect(ProviderType.ANTHROPIC).answer("chat", raw, "claude")


def test_a_chat_answer_with_tool_arguments_nested_too_deep_is_invalid_for_messages() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP}}
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [call]}}],
    }
    wrap = ingress.for_messages({"model": "m", "max_tokens": 5, "messages": []})
    dialect = wrap(dialects.dialect(ProviderType.OPENAI_COMPATIBLE))
    with pytest.raises(dialects.InvalidAnswer):
        dialect.answer("chat", orjson.dumps(answer), "m")
