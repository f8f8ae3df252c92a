"""OpenAI <-> Anthropic translation: golden cases, then end to end against the fake provider.

The end-to-end tests send translated requests to the fake Anthropic API, translate its plain
and streamed answers back and validate them with the ``openai`` SDK's own response types.
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
from signalbox_providers.sse import SseEvent, SseParser
from signalbox_providers.translate.chat_to_anthropic import (
    AnthropicStream,
    UpstreamStreamError,
    error_to_openai,
    from_anthropic,
    to_anthropic,
)
from signalbox_providers.translate.openai_format import TokenUsage, TranslationError

UPSTREAM = "claude-fake-1"
ASKED = "gpt-4o"  # the name the client used; responses must carry it
PNG_B64 = "iVBORw0KGgoAAAANSUhEUg=="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
HELLO = [{"role": "user", "content": "what is the weather like"}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
    {"role": "user", "content": "Hi"},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21C, sunny"},
    {"role": "user", "content": "Thanks. And tomorrow?"},
]


# -- requests ------------------------------------------------------------------------------


def test_conversation_golden() -> None:
    body = {"model": ASKED, "messages": CONVERSATION, "tools": [WEATHER], "stop": "END"}
    before = copy.deepcopy(body)
    assert to_anthropic(body, UPSTREAM) == {
        "model": UPSTREAM,
        "max_tokens": 4096,
        "system": "Be brief.\n\nUse metric units.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "text", "text": "Weather in Paris?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "21C, sunny"},
                    {"type": "text", "text": "Thanks. And tomorrow?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "input_schema": WEATHER["function"]["parameters"],
            }
        ],
    }
    assert body == before


def test_scalars_and_limits() -> None:
    body = {
        "messages": HELLO,
        "max_tokens": 50,
        "max_completion_tokens": 20,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": ["a", "b"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "seed": 3,
    }
    out = to_anthropic(body, UPSTREAM, default_max_tokens=99)
    assert out == {
        "model": UPSTREAM,
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "what is the weather like"}],
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["a", "b"],
        "stream": True,
        "metadata": {"user_id": "u-1"},
    }
    assert to_anthropic({"messages": HELLO}, UPSTREAM, default_max_tokens=99)["max_tokens"] == 99


def test_images() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpg,%FF%D8"}},
    ]
    [message] = to_anthropic({"messages": [{"role": "user", "content": parts}]}, UPSTREAM)[
        "messages"
    ]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9g="}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, "absent"),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: Any) -> None:
    body: dict[str, Any] = {"messages": HELLO, "tools": [WEATHER], "tool_choice": choice}
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = to_anthropic(body, UPSTREAM)
    if expected == "absent":
        assert "tool_choice" not in out
    else:
        assert out["tool_choice"] == (expected or {"type": "tool", "name": "get_weather"})


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in to_anthropic({"messages": HELLO, "tool_choice": "auto"}, "m")


def test_json_modes_become_system_instructions() -> None:
    plain = to_anthropic({"messages": HELLO, "response_format": {"type": "text"}}, "m")
    assert "system" not in plain
    obj = {"messages": HELLO, "response_format": {"type": "json_object"}}
    assert "JSON object" in to_anthropic(obj, "m")["system"]
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    system = to_anthropic({"messages": messages, "response_format": fmt}, "m")["system"]
    assert system.startswith("Be brief.\n\n")
    assert json.loads(system[system.index("{") :]) == schema


@pytest.mark.parametrize(
    "body",
    [
        {"messages": HELLO, "n": 2},
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "x", "arguments": "{"}}],
                }
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": [{"role": "function", "name": "f", "content": "x"}]},
        {"messages": HELLO, "tools": [{"type": "custom", "custom": {"name": "x"}}]},
        {"messages": HELLO, "response_format": {"type": "grammar"}},
        {"messages": "hello"},
    ],
)
def test_untranslatable_requests_raise(body: dict[str, Any]) -> None:
    with pytest.raises(TranslationError):
        to_anthropic(body, UPSTREAM)


# -- responses -----------------------------------------------------------------------------

MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": UPSTREAM,
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 20,
        "output_tokens": 7,
    },
}


def test_response_golden() -> None:
    before = copy.deepcopy(MESSAGE)
    out = from_anthropic(MESSAGE, ASKED, created=123)
    assert before == MESSAGE
    assert out == {
        "id": "chatcmpl-msg_1",
        "object": "chat.completion",
        "created": 123,
        "model": ASKED,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 35,
            "completion_tokens": 7,
            "total_tokens": 42,
            "prompt_tokens_details": {"cached_tokens": 20},
        },
    }
    ChatCompletion.model_validate(out)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, finish: str) -> None:
    body = {**MESSAGE, "content": [], "stop_reason": stop_reason}
    out = from_anthropic(body, ASKED)
    assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0]["message"]["content"] == ""


def _events(*payloads: dict[str, Any]) -> list[SseEvent]:
    return [SseEvent(str(p["type"]), json.dumps(p)) for p in payloads]


def test_stream_of_a_tool_call_without_input() -> None:
    stream = AnthropicStream(ASKED, include_usage=False, created=1)
    start = {**MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 4}}
    tool = {"type": "tool_use", "id": "toolu_9", "name": "now", "input": {}}
    chunks = []
    for event in _events(
        {"type": "message_start", "message": start},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": tool},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 3},
        },
        {"type": "some_future_event"},
    ):
        chunks += stream.feed(event)
    assert not stream.done
    assert stream.usage == TokenUsage(4, 3)
    chunks += stream.feed(_events({"type": "message_stop"})[0])
    assert stream.done
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert {c.id for c in parsed} == {"chatcmpl-msg_1"}
    assert parsed[0].choices[0].delta.role == "assistant"
    calls = [tc for c in parsed for tc in c.choices[0].delta.tool_calls or []]
    assert (calls[0].id, calls[0].function.name) == ("toolu_9", "now")
    assert "".join(tc.function.arguments or "" for tc in calls) == "{}"
    assert parsed[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in parsed)


def test_stream_error_event_raises() -> None:
    stream = AnthropicStream(ASKED, include_usage=True)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamStreamError, match="Overloaded") as info:
        stream.feed(_events(error)[0])
    assert info.value.kind == "overloaded_error"
    with pytest.raises(UpstreamStreamError, match="malformed"):
        stream.feed(SseEvent("message_start", "{not json"))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            ("slow down", "requests", "rate_limit_exceeded"),
        ),
        (
            401,
            {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
            ("bad key", "invalid_request_error", "invalid_api_key"),
        ),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ("Overloaded", "server_error", "overloaded"),
        ),
        (502, "<html>Bad Gateway</html>", ("<html>Bad Gateway</html>", "server_error", None)),
        (400, None, ("Anthropic returned HTTP 400", "invalid_request_error", None)),
    ],
)
def test_errors(status: int, body: Any, expected: tuple[str, str, str | None]) -> None:
    message, kind, code = expected
    assert error_to_openai(status, body) == {
        "error": {"message": message, "type": kind, "param": None, "code": code}
    }


# -- end to end against the fake Anthropic API -----------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("cloud", Flavor.ANTHROPIC, [UPSTREAM]) as provider:
        yield provider


def _headers() -> dict[str, str]:
    return {"anthropic-version": "2023-06-01", "x-api-key": "k"}


async def _complete(fake: FakeProvider, body: dict[str, Any]) -> ChatCompletion:
    request = to_anthropic({**body, "model": ASKED}, UPSTREAM)
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{fake.url}/v1/messages", json=request, headers=_headers())
    assert resp.status_code == 200, resp.text
    return ChatCompletion.model_validate(from_anthropic(resp.json(), ASKED))


async def _stream(fake: FakeProvider, body: dict[str, Any]) -> list[ChatCompletionChunk]:
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    request = to_anthropic(stream_body, UPSTREAM)
    parser, stream = SseParser(), AnthropicStream(ASKED, include_usage=True)
    chunks: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{fake.url}/v1/messages"
        async with client.stream("POST", url, json=request, headers=_headers()) as resp:
            assert resp.status_code == 200
            async for raw in resp.aiter_raw():
                for i in range(0, len(raw), 7):  # small reads, cutting events anywhere
                    for event in parser.feed(raw[i : i + 7]):
                        chunks += stream.feed(event)
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


def _calls(completion: ChatCompletion) -> list[tuple[str, Any]]:
    message = completion.choices[0].message
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


async def test_e2e_plain_and_stream_agree(fake: FakeProvider) -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, *HELLO]}
    plain = await _complete(fake, body)
    chunks = await _stream(fake, body)
    assert plain.model == ASKED
    assert plain.choices[0].message.content == (
        "Hello from cloud. You said: what is the weather like"
    )
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None
    assert plain.usage.prompt_tokens == 5 + 3 + 2
    assert plain.usage.completion_tokens == 10
    text, calls, finish = _assemble(chunks)
    assert (text, calls, finish) == (plain.choices[0].message.content, [], "stop")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert fake.seen[0].body is not None
    assert fake.seen[0].body["system"] == "Be brief."


async def test_e2e_tool_call_round_trip(fake: FakeProvider) -> None:
    body: dict[str, Any] = {"messages": HELLO, "tools": [WEATHER], "tool_choice": "required"}
    plain = await _complete(fake, body)
    chunks = await _stream(fake, body)
    expected = [("get_weather", {"city": "example", "days": 1})]
    assert plain.choices[0].finish_reason == "tool_calls"
    assert plain.choices[0].message.content is None
    assert _calls(plain) == expected
    assert _assemble(chunks) == ("", expected, "tool_calls")
    [call] = plain.choices[0].message.tool_calls or []
    follow_up = [
        *HELLO,
        plain.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21C and sunny"},
    ]
    answer = await _complete(fake, {**body, "messages": follow_up})
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == (
        "Hello from cloud. You said: what is the weather like"
    )
    sent = fake.seen[-1].body
    assert sent is not None
    assert sent["messages"][1]["content"][0]["id"] == call.id
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call.id


async def test_e2e_images_stop_and_length(fake: FakeProvider) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    content = [{"type": "text", "text": "what is this"}, image]
    seen = await _complete(fake, {"messages": [{"role": "user", "content": content}]})
    assert "I see 1 image(s)." in (seen.choices[0].message.content or "")
    stopped = await _complete(fake, {"messages": HELLO, "stop": "weather"})
    assert stopped.choices[0].message.content == "Hello from cloud. You said: what is the"
    assert stopped.choices[0].finish_reason == "stop"
    cut = await _complete(fake, {"messages": HELLO, "max_tokens": 3})
    chunks = await _stream(fake, {"messages": HELLO, "max_tokens": 3})
    assert cut.choices[0].message.content == "Hello from cloud."
    assert cut.choices[0].finish_reason == "length"
    assert _assemble(chunks) == ("Hello from cloud.", [], "length")


async def test_e2e_upstream_error_is_translated(fake: FakeProvider) -> None:
    fake.set_faults(status=529)
    request = to_anthropic({"messages": HELLO}, UPSTREAM)
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{fake.url}/v1/messages", json=request, headers=_headers())
    error = error_to_openai(resp.status_code, resp.json())["error"]
    assert (error["type"], error["code"]) == ("server_error", "overloaded")
    assert error["message"] == "Injected failure: HTTP 529"
