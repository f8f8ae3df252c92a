"""The router (manifests mode) in front of real inference servers, driven by the official openai
SDK: llama.cpp's OpenAI-compatible server (type ``OpenAICompatible``) and Ollama (type
``Ollama``: chat through its native ``/api/chat`` with NDJSON streams, embeddings through
``/v1/embeddings``), both serving the tiny random-weight models.

llama.cpp's server ignores ``stream_options.include_usage``, so its streams carry no usage: the
router meters them with its own estimate, marked as estimated, and never as 0 tokens. Its
``tiny-tools`` model (``llama-tools`` here) answers a forced tool call, streamed with the call's
id and name repeated in every delta; the router sends them once, as OpenAI does (else the openai
SDK's ``stream()`` helper names the tool ``get_weatherget_weather…``), and meters the arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support import inference
from tests.support.router import RouterProcess, provider, running_router

CHAT_CAPS = ["chat", "streaming"]
PROMPT = [{"role": "user", "content": "say something"}]


SERVERS = {"llama": ("llama_cpp", "OpenAICompatible"), "ollama": ("ollama", "Ollama")}


@pytest.fixture(scope="module")
def routers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RouterProcess]]:
    """A router per real server, started on first use (``via``: ``llama`` or ``ollama``), each
    serving ``<via>-chat``, ``<via>-embed`` (and ``llama-tools``) through one provider named
    ``via``."""
    with ExitStack() as stack:

        class Routers(dict[str, RouterProcess]):
            def __missing__(self, via: str) -> RouterProcess:
                fixture, ptype = SERVERS[via]
                server: inference.Server = request.getfixturevalue(fixture)
                models = [
                    {
                        "name": server.chat_model,
                        "aliases": [f"{via}-chat"],
                        "capabilities": CHAT_CAPS,
                    },
                    {
                        "name": server.embed_model,
                        "aliases": [f"{via}-embed"],
                        "capabilities": ["embeddings"],
                    },
                ]
                if server.tools_model is not None:
                    caps = [*CHAT_CAPS, "tools"]
                    tools = {"name": server.tools_model, "aliases": [f"{via}-tools"]}
                    models.append({**tools, "capabilities": caps})
                url = server.base_url if ptype == "OpenAICompatible" else server.url
                docs = [provider(via, ptype, url, models=models)]
                folder: Path = tmp_path_factory.mktemp(f"router-{via}") / "manifests"
                router = stack.enter_context(running_router(folder, docs, "--no-client-auth"))
                self[via] = router
                return router

        yield Routers()


def client(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)


def usage_row(router: RouterProcess, model: str) -> dict[str, Any]:
    rows = router.get("/v1/usage").json()["data"]
    return next((r for r in rows if r["model"] == model), {})


every_server = pytest.mark.parametrize("via", list(SERVERS))


@every_server
def test_plain_chat_through_a_real_server_carries_its_usage(
    routers: dict[str, RouterProcess], via: str
) -> None:
    raw = client(routers[via]).chat.completions.with_raw_response.create(
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


@every_server
def test_a_streamed_chat_through_a_real_server(routers: dict[str, RouterProcess], via: str) -> None:
    stream = client(routers[via]).chat.completions.create(
        model=f"{via}-chat", messages=PROMPT, max_tokens=6, stream=True
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@every_server
def test_embeddings_through_a_real_server(routers: dict[str, RouterProcess], via: str) -> None:
    r = client(routers[via]).embeddings.create(model=f"{via}-embed", input=["one", "two three"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == len(r.data[1].embedding) > 0


def test_llama_cpp_streams_without_usage_are_metered_as_estimated_never_zero(
    routers: dict[str, RouterProcess],
) -> None:
    router = routers["llama"]
    before = usage_row(router, "llama-chat").get("estimated_tokens", 0)
    stream = client(router).chat.completions.create(
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
    routers: dict[str, RouterProcess],
) -> None:
    router = routers["ollama"]
    stream = client(router).chat.completions.create(
        model="ollama-chat", messages=PROMPT, stream=True, max_tokens=4
    )
    assert isinstance(stream, openai.Stream)
    list(stream)
    row = usage_row(router, "ollama-chat")
    assert row["total_tokens"] > 0
    assert row["estimated_tokens"] == 0


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FORCED: Any = {"type": "function", "function": {"name": "get_weather"}}
WEATHER_PROMPT = [{"role": "user", "content": "what is the weather in Paris?"}]


def test_a_forced_tool_call_through_the_router_to_llama_cpp(
    routers: dict[str, RouterProcess],
) -> None:
    router = routers["llama"]
    before = usage_row(router, "llama-tools").get("total_tokens", 0)
    raw = client(router).chat.completions.with_raw_response.create(
        model="llama-tools",
        messages=WEATHER_PROMPT,
        tools=[WEATHER],
        tool_choice=FORCED,
        max_tokens=8,
    )
    assert raw.headers["x-signalbox-provider"] == "llama"
    r = raw.parse()
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call__0_get_weather_")
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert call.function.arguments.startswith("{")
    assert r.usage is not None
    assert 0 < r.usage.completion_tokens <= 8
    row = usage_row(router, "llama-tools")
    assert row["total_tokens"] - before == r.usage.total_tokens  # the server's own usage


def test_a_streamed_forced_tool_call_through_the_router_to_llama_cpp(
    routers: dict[str, RouterProcess],
) -> None:
    router = routers["llama"]
    before = usage_row(router, "llama-tools").get("estimated_tokens", 0)
    stream = client(router).chat.completions.create(
        model="llama-tools",
        messages=WEATHER_PROMPT,
        tools=[WEATHER],
        tool_choice=FORCED,
        max_tokens=8,
        stream=True,
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert calls, "no tool call delta"
    # the server repeats id and name in every delta; the router sends them in the first only
    assert {c.index for c in calls} == {0}
    assert calls[0].id is not None
    assert calls[0].id.startswith("call__0_get_weather_")
    assert calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    assert len(calls) > 1
    assert all(c.id is None and c.type is None for c in calls[1:])
    assert all(c.function is None or c.function.name is None for c in calls[1:])
    arguments = "".join(c.function.arguments or "" for c in calls if c.function)
    assert arguments.startswith("{")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    row = usage_row(router, "llama-tools")
    pieces = sum(1 for c in calls if c.function and c.function.arguments)
    # no usage from the server: estimated, the arguments counted (one token a piece at least)
    assert row["estimated_tokens"] - before >= 3 + pieces
    labels = {"model": "llama-tools", "provider": "llama", "direction": "output"}
    assert router.metric("signalbox_router_tokens_total", **labels, source="estimated") >= pieces


def test_the_sdk_stream_helper_names_a_llama_cpp_tool_call_once(
    routers: dict[str, RouterProcess],
) -> None:
    """The openai SDK's ``stream()`` helper joins what each delta holds."""
    with client(routers["llama"]).chat.completions.stream(
        model="llama-tools",
        messages=WEATHER_PROMPT,
        tools=[WEATHER],
        tool_choice=FORCED,
        max_tokens=8,
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.id.startswith("call__0_get_weather_")
    assert call.id.count("call__0_") == 1
    assert call.function.arguments.startswith("{")
    assert final.choices[0].finish_reason == "tool_calls"
