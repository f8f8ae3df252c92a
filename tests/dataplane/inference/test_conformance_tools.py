"""Fake-vs-real conformance of tool calls: the fake's ``llamacpp`` flavor against llama.cpp's
server (llama-cpp-python 0.3.36), with the same wire-level assertions, over raw HTTP on loopback.

The real server answers tools only with a tool-calling chat format: ``tiny-tools`` is the tiny
chat model with ``chatml-function-calling``, and a forced ``tool_choice`` makes it answer with a
grammar-constrained call even with random weights. The fake follows that server where it
differs from OpenAI (router/signalbox_fake/llamacpp.py): the legacy ``function_call``
mirrors the call, and streamed deltas repeat the call's id, type and name in every chunk.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.dataplane.inference.test_conformance import stream_chunks
from tests.support import inference

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
MAX_TOKENS = 8


def forced_call(server: inference.Server, **extra: Any) -> dict[str, Any]:
    assert server.tools_model is not None
    return {
        "model": server.tools_model,
        "messages": [{"role": "user", "content": "what is the weather in Paris?"}],
        "tools": [TOOL],
        "tool_choice": FORCED,
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def assert_call_id(call_id: object) -> None:
    assert isinstance(call_id, str)
    assert call_id.startswith("call__0_get_weather_cmpl-")


def test_a_forced_tool_call(server: inference.Server) -> None:
    resp = httpx.post(
        server.base_url + "/chat/completions", json=forced_call(server), timeout=60, trust_env=False
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"  # even when max_tokens cut the arguments
    message = choice["message"]
    assert set(message) == {"role", "content", "tool_calls", "function_call"}  # no refusal
    assert (message["role"], message["content"]) == ("assistant", None)
    [call] = message["tool_calls"]
    assert set(call) == {"id", "type", "function"}
    assert_call_id(call["id"])
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert call["function"]["arguments"].startswith("{")
    assert message["function_call"] == call["function"]  # the legacy field, mirrored
    usage = body["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= MAX_TOKENS
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def streamed(server: inference.Server) -> list[dict[str, Any]]:
    body = forced_call(server, stream=True, stream_options={"include_usage": True})
    return stream_chunks(server, body)


def test_a_streamed_forced_tool_call(server: inference.Server) -> None:
    parsed = streamed(server)
    assert {c["object"] for c in parsed} == {"chat.completion.chunk"}
    assert len({c["id"] for c in parsed}) == 1
    assert all(c.get("usage") is None for c in parsed)  # include_usage is ignored
    assert all(len(c["choices"]) == 1 for c in parsed)
    first, *middle, last = [c["choices"][0] for c in parsed]
    keys = {"role", "content", "function_call", "tool_calls"}
    assert first["delta"] == {**dict.fromkeys(keys), "role": "assistant"}
    assert first["finish_reason"] is None
    assert last["finish_reason"] == "tool_calls"
    assert last["delta"] == dict.fromkeys(keys)
    assert middle, "no argument pieces"
    pieces: dict[int, list[str]] = {}
    ids = set()
    for choice in middle:
        delta = choice["delta"]
        assert choice["finish_reason"] is None
        assert set(delta) == keys
        assert (delta["role"], delta["content"]) == (None, None)
        [call] = delta["tool_calls"]
        # id, type and name repeated in every delta, beside a piece of the arguments
        assert_call_id(call["id"])
        ids.add(call["id"])
        assert call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert isinstance(call["function"]["arguments"], str)
        pieces.setdefault(call["index"], []).append(call["function"]["arguments"])
        assert delta["function_call"] == call["function"]  # the legacy field, mirrored
    assert len(ids) == 1
    assert list(pieces) == [0]
    assert "".join(pieces[0]).startswith("{")
