"""OpenAI <-> Ollama native API translation: golden cases, then end to end against the fake.

The end-to-end tests send translated requests to the fake Ollama's ``/api/chat``, translate its
JSON and NDJSON answers back and validate them with the ``openai`` SDK's own response types.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from signalbox_fake import FakeProvider, Flavor
from signalbox_providers.sse import NdjsonParser
from signalbox_providers.translate.chat_to_ollama import (
    OllamaStream,
    UpstreamStreamError,
    error_to_openai,
    from_ollama,
    to_ollama,
)
from signalbox_providers.translate.openai_format import TokenUsage, TranslationError

UPSTREAM = "llama3.2:3b"
ASKED = "gpt-4o-mini"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUg=="
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": SCHEMA},
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
HELLO = [{"role": "user", "content": "what is the weather like"}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


# -- requests ------------------------------------------------------------------------------


def test_conversation_golden() -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    body = {
        "model": ASKED,
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        ],
        "tools": [WEATHER],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.5,
        "seed": 7,
        "stop": "END",
    }
    before = copy.deepcopy(body)
    assert to_ollama(body, UPSTREAM) == {
        "model": UPSTREAM,
        "stream": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": [PNG_B64]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": "21C", "tool_name": "get_weather"},
        ],
        "tools": [WEATHER],
        "options": {
            "temperature": 0.2,
            "top_p": 0.5,
            "seed": 7,
            "num_predict": 64,
            "stop": ["END"],
        },
    }
    assert body == before


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        ({"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}, SCHEMA),
    ],
)
def test_json_modes(response_format: dict[str, Any], expected: Any) -> None:
    out = to_ollama({"messages": HELLO, "response_format": response_format, "stream": True}, "m")
    assert out.get("format") == expected
    assert out["stream"] is True


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        (None, ["get_weather", "now"]),
        ("required", ["get_weather", "now"]),
        ("none", []),
        ({"type": "function", "function": {"name": "now"}}, ["now"]),
    ],
)
def test_tool_choice(choice: Any, names: list[str]) -> None:
    out = to_ollama({"messages": HELLO, "tools": [WEATHER, CLOCK], "tool_choice": choice}, "m")
    assert [t["function"]["name"] for t in out.get("tools", [])] == names


@pytest.mark.parametrize(
    "body",
    [
        {"messages": HELLO, "n": 3},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "x", "arguments": "[1]"}}],
                }
            ]
        },
        {"messages": HELLO, "response_format": {"type": "grammar"}},
        {"messages": [{"role": "function", "content": "x"}]},
    ],
)
def test_untranslatable_requests_raise(body: dict[str, Any]) -> None:
    with pytest.raises(TranslationError):
        to_ollama(body, UPSTREAM)


# -- responses -----------------------------------------------------------------------------

FINAL: dict[str, Any] = {
    "model": UPSTREAM,
    "created_at": "2025-01-01T00:00:00.123456789Z",
    "message": {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 12,
    "eval_count": 5,
}


def test_response_golden() -> None:
    before = copy.deepcopy(FINAL)
    out = from_ollama(FINAL, ASKED, created=9)
    assert before == FINAL
    [call] = out["choices"][0]["message"].pop("tool_calls")
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert out["id"].startswith("chatcmpl-")
    del out["id"]
    assert out == {
        "object": "chat.completion",
        "created": 9,
        "model": ASKED,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


@pytest.mark.parametrize(
    ("done_reason", "finish"), [("stop", "stop"), ("length", "length"), ("load", "stop")]
)
def test_finish_reasons(done_reason: str, finish: str) -> None:
    body = {**FINAL, "message": {"role": "assistant", "content": "hi"}, "done_reason": done_reason}
    out = ChatCompletion.model_validate(from_ollama(body, ASKED))
    assert (out.choices[0].finish_reason, out.choices[0].message.content) == (finish, "hi")


def test_stream_unit() -> None:
    stream = OllamaStream(ASKED, include_usage=False, created=1)
    chunks = stream.feed({"message": {"role": "assistant", "content": "Hi"}, "done": False})
    assert stream.usage is None
    chunks += stream.feed({**FINAL, "message": {**FINAL["message"], "content": "!"}})
    assert stream.done
    assert stream.usage == TokenUsage(12, 5)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert [c.choices[0].delta.content for c in parsed[:3]] == ["", "Hi", "!"]
    [call] = parsed[3].choices[0].delta.tool_calls or []
    assert (call.index, call.function and call.function.arguments) == (0, '{"city":"Paris"}')
    assert parsed[-1].choices[0].finish_reason == "tool_calls"
    assert stream.feed({"done": True}) == []
    with pytest.raises(UpstreamStreamError, match="out of memory"):
        OllamaStream(ASKED, include_usage=True).feed({"error": "out of memory"})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            {"error": 'model "x" not found, try pulling it first'},
            (
                'model "x" not found, try pulling it first',
                "invalid_request_error",
                "model_not_found",
            ),
        ),
        (500, {"error": "boom"}, ("boom", "server_error", None)),
        (503, None, ("Ollama returned HTTP 503", "server_error", None)),
        (400, "bad json", ("bad json", "invalid_request_error", None)),
    ],
)
def test_errors(status: int, body: Any, expected: tuple[str, str, str | None]) -> None:
    message, kind, code = expected
    assert error_to_openai(status, body) == {
        "error": {"message": message, "type": kind, "param": None, "code": code}
    }


# -- end to end against the fake Ollama ------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("local", Flavor.OLLAMA, [UPSTREAM]) as provider:
        yield provider


async def _complete(fake: FakeProvider, body: dict[str, Any]) -> ChatCompletion:
    request = to_ollama({**body, "model": ASKED}, UPSTREAM)
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{fake.url}/api/chat", json=request)
    assert resp.status_code == 200, resp.text
    return ChatCompletion.model_validate(from_ollama(resp.json(), ASKED))


async def _stream(fake: FakeProvider, body: dict[str, Any]) -> list[ChatCompletionChunk]:
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    request = to_ollama(stream_body, UPSTREAM)
    parser, stream = NdjsonParser(), OllamaStream(ASKED, include_usage=True)
    chunks: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{fake.url}/api/chat", json=request) as resp:
            assert resp.status_code == 200
            async for raw in resp.aiter_raw():
                for i in range(0, len(raw), 5):  # small reads, cutting lines anywhere
                    for obj in parser.feed(raw[i : i + 5]):
                        chunks += stream.feed(obj)
    assert parser.flush() == []
    assert stream.done
    return [ChatCompletionChunk.model_validate(c) for c in chunks]


def _assemble(chunks: list[ChatCompletionChunk]) -> tuple[str, list[tuple[str, Any]], str | None]:
    """Streamed text, tool calls as (name, parsed arguments), and the finish reason."""
    text, names, args, finish = "", dict[int, str](), dict[int, str](), None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                fragment = call.function.arguments if call.function else None
                args[call.index] = args.get(call.index, "") + (fragment or "")
    calls = [(names[i], json.loads(args[i])) for i in sorted(names)]
    return text, calls, finish


async def test_e2e_plain_and_stream_agree(fake: FakeProvider) -> None:
    plain = await _complete(fake, {"messages": HELLO})
    chunks = await _stream(fake, {"messages": HELLO})
    content = plain.choices[0].message.content
    assert content == "Hello from local. You said: what is the weather like"
    assert plain.model == ASKED
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (8, 10)
    assert _assemble(chunks) == (content, [], "stop")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage


async def test_e2e_tool_call_round_trip(fake: FakeProvider) -> None:
    body: dict[str, Any] = {"messages": HELLO, "tools": [WEATHER]}
    plain = await _complete(fake, body)
    chunks = await _stream(fake, body)
    expected = [("get_weather", {"city": "example", "days": 1})]
    message = plain.choices[0].message
    assert plain.choices[0].finish_reason == "tool_calls"
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    assert calls == expected
    assert _assemble(chunks) == ("", expected, "tool_calls")
    [call] = message.tool_calls or []
    follow_up = [
        *HELLO,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21C and sunny"},
    ]
    answer = await _complete(fake, {**body, "messages": follow_up})
    assert answer.choices[0].finish_reason == "stop"
    sent = fake.seen[-1].body
    assert sent is not None
    assert sent["messages"][-1] == {
        "role": "tool",
        "content": "21C and sunny",
        "tool_name": "get_weather",
    }


async def test_e2e_images_json_stop_and_length(fake: FakeProvider) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    content = [{"type": "text", "text": "what is this"}, image]
    seen = await _complete(fake, {"messages": [{"role": "user", "content": content}]})
    assert "I see 1 image(s)." in (seen.choices[0].message.content or "")
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}
    structured = await _complete(fake, {"messages": HELLO, "response_format": fmt})
    assert json.loads(structured.choices[0].message.content or "") == {"city": "example", "days": 1}
    as_object = await _complete(
        fake, {"messages": HELLO, "response_format": {"type": "json_object"}}
    )
    assert isinstance(json.loads(as_object.choices[0].message.content or ""), dict)
    stopped = await _complete(fake, {"messages": HELLO, "stop": ["weather"]})
    assert stopped.choices[0].message.content == "Hello from local. You said: what is the"
    cut = await _complete(fake, {"messages": HELLO, "max_completion_tokens": 3})
    chunks = await _stream(fake, {"messages": HELLO, "max_completion_tokens": 3})
    assert cut.choices[0].message.content == "Hello from local."
    assert cut.choices[0].finish_reason == "length"
    assert _assemble(chunks) == ("Hello from local.", [], "length")


async def test_e2e_upstream_error_is_translated(fake: FakeProvider) -> None:
    request = to_ollama({"messages": HELLO}, "missing-model")
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{fake.url}/api/chat", json=request)
    error = error_to_openai(resp.status_code, resp.json())["error"]
    assert (resp.status_code, error["code"]) == (404, "model_not_found")
    assert "missing-model" in error["message"]
