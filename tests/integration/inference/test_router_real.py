"""The router (manifests mode) in front of real inference servers, driven by the official openai
SDK: llama.cpp's OpenAI-compatible server (type ``OpenAICompatible``) and Ollama (type
``Ollama``: chat through its native ``/api/chat`` with NDJSON streams, embeddings through
``/v1/embeddings``), both serving the tiny random-weight models.

llama.cpp's server ignores ``stream_options.include_usage``, so its streams carry no usage: the
router meters them with its own estimate, marked as estimated, and never as 0 tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support import inference
from tests.support.router import RouterProcess, provider, running_router

CHAT_CAPS = ["chat", "streaming"]
PROMPT = [{"role": "user", "content": "say something"}]


@pytest.fixture(scope="module")
def router(
    llama_cpp: inference.Server, ollama: inference.Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    def models(server: inference.Server, alias: str) -> list[dict[str, Any]]:
        return [
            {"name": server.chat_model, "aliases": [f"{alias}-chat"], "capabilities": CHAT_CAPS},
            {
                "name": server.embed_model,
                "aliases": [f"{alias}-embed"],
                "capabilities": ["embeddings"],
            },
        ]

    docs = [
        provider(
            "llama", "OpenAICompatible", llama_cpp.base_url, models=models(llama_cpp, "llama")
        ),
        provider("ollama", "Ollama", ollama.url, models=models(ollama, "ollama")),
    ]
    folder: Path = tmp_path_factory.mktemp("router") / "manifests"
    with running_router(folder, docs, "--no-client-auth") as r:
        yield r


@pytest.fixture
def client(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)


def usage_row(router: RouterProcess, model: str) -> dict[str, Any]:
    rows = router.get("/v1/usage").json()["data"]
    return next((r for r in rows if r["model"] == model), {})


@pytest.mark.parametrize("via", ["llama", "ollama"])
def test_plain_chat_through_a_real_server_carries_its_usage(
    client: openai.OpenAI, router: RouterProcess, via: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=f"{via}-chat", messages=PROMPT, max_tokens=6
    )
    assert raw.headers["x-signalbox-provider"] == via
    r = raw.parse()
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in {"stop", "length"}
    assert r.usage is not None
    assert 0 < r.usage.completion_tokens <= 6
    assert r.usage.prompt_tokens > 0


@pytest.mark.parametrize("via", ["llama", "ollama"])
def test_a_streamed_chat_through_a_real_server(client: openai.OpenAI, via: str) -> None:
    stream = client.chat.completions.create(
        model=f"{via}-chat", messages=PROMPT, max_tokens=6, stream=True
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("via", ["llama", "ollama"])
def test_embeddings_through_a_real_server(client: openai.OpenAI, via: str) -> None:
    r = client.embeddings.create(model=f"{via}-embed", input=["one", "two three"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == len(r.data[1].embedding) > 0


def test_llama_cpp_streams_without_usage_are_metered_as_estimated_never_zero(
    client: openai.OpenAI, router: RouterProcess
) -> None:
    before = usage_row(router, "llama-chat").get("estimated_tokens", 0)
    stream = client.chat.completions.create(
        model="llama-chat",
        messages=PROMPT,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)  # the server ignores include_usage
    text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert text
    row = usage_row(router, "llama-chat")
    assert row["estimated_tokens"] - before >= 3 + len(text)  # the reply overhead and the text
    labels = {"model": "llama-chat", "provider": "llama", "direction": "output"}
    assert router.metric("signalbox_router_tokens_total", **labels, source="estimated") >= len(text)


def test_ollama_streams_carry_usage_and_are_not_estimated(
    client: openai.OpenAI, router: RouterProcess
) -> None:
    list(
        client.chat.completions.create(
            model="ollama-chat", messages=PROMPT, stream=True, max_tokens=4
        )
    )
    row = usage_row(router, "ollama-chat")
    assert row["total_tokens"] > 0
    assert row["estimated_tokens"] == 0
