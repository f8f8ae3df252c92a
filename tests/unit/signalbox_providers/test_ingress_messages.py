"""Anthropic Messages ingress as pure functions: requests into the internal chat form, chat
answers and streams back into Messages, checked against the ``anthropic`` SDK's own types."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pydantic
import pytest

from signalbox_providers.dialects.base import StreamFailed
from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.translate import messages_to_chat
from signalbox_providers.translate.messages_to_anthropic import NativeEvents
from signalbox_providers.translate.messages_to_chat import (
    ChatEvents,
    InvalidMessages,
    to_chat,
)

EVENTS = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def _request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_system_prompt_and_options() -> None:
    chat = to_chat(
        _request(
            system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            stop_sequences=["END"],
            temperature=0.5,
            top_k=3,
            metadata={"user_id": "u1"},
        )
    )
    assert chat["messages"][0] == {"role": "system", "content": "a\n\nb"}
    assert chat["stop"] == ["END"]
    assert chat["temperature"] == 0.5
    assert "top_k" not in chat
    assert chat["user"] == "u1"
    assert chat["max_tokens"] == 10
    assert "stream" not in chat


def test_stream_asks_for_usage() -> None:
    chat = to_chat(_request(stream=True))
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_tool_use_and_results() -> None:
    chat = to_chat(
        _request(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "x"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and also"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "21"}],
                            "is_error": True,
                        },
                    ],
                },
            ],
            tools=[{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    )
    assistant, tool, user = chat["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"x"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: 21"}
    assert user == {"role": "user", "content": [{"type": "text", "text": "and also"}]}
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "w", "parameters": {"type": "object"}, "description": "weather"},
        }
    ]
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    assert to_chat(_request(tools=tools, tool_choice=choice))["tool_choice"] == expected


def test_images() -> None:
    chat = to_chat(
        _request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                }
            ]
        )
    )
    parts = chat["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (
            {"model": "m", "max_tokens": True, "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
        ),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role",
        ),
        (_request(stop_sequences="END"), "stop_sequences"),
        (_request(stream="yes"), "stream"),
        (_request(tools=[{"name": "w"}]), "tools.0.input_schema"),
        (_request(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0"),
        (
            _request(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
            "messages.0.content.0",
        ),
    ],
)
def test_invalid_requests(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidMessages) as caught:
        to_chat(body)
    assert caught.value.param == param


def _chat_answer(**message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "tool_calls"}
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }


def test_answer_validates_as_sdk_message() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"c":1}'}}
    body = messages_to_chat.from_chat(_chat_answer(content="ok", tool_calls=[call]))
    m = anthropic.types.Message.model_validate(body)
    assert m.id == "msg_abc"
    assert m.model == "up"
    assert m.stop_reason == "tool_use"
    assert [b.type for b in m.content] == ["text", "tool_use"]
    assert m.content[1].input == {"c": 1}
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.output_tokens) == (
        10,
        2,
        5,
    )


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: Any, reason: str) -> None:
    assert messages_to_chat.stop_reason(finish) == reason


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (502, "api_error"),
        (503, "api_error"),
    ],
)
def test_errors_in_anthropic_shape(status: int, kind: str) -> None:
    openai_shaped = {"error": {"message": "nope", "type": "x", "param": None, "code": None}}
    assert messages_to_chat.from_chat_error(status, openai_shaped) == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }
    native = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert messages_to_chat.from_chat_error(529, native) == native


def _sse(chunk: dict[str, Any] | str) -> bytes:
    return b"data: " + (chunk if isinstance(chunk, str) else json.dumps(chunk)).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _events(raw: bytes) -> list[tuple[str, Any]]:
    out = []
    for block in raw.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        if payload["type"] == "ping":  # not among the SDK's event types; it skips them
            out.append(("ping", payload))
        else:
            out.append((payload["type"], EVENTS.validate_python(payload)))
    return out


def test_chat_stream_becomes_event_sequence() -> None:
    upstream = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, "tool_calls"),
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "up",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
        },
        "[DONE]",
    ]
    stream = ChatEvents(OpenAIEvents(True), "client-model")
    raw = b"".join(stream.feed(_sse(c)) for c in upstream)
    assert stream.done
    assert stream.usage == (7, 4)
    events = _events(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[6][1].content_block.type == "tool_use"
    assert events[6][1].index == 1
    assert events[7][1].delta.partial_json == '{"a":1}'  # held, then sent whole once checked
    delta = events[-2][1]
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.output_tokens == 4
    assert delta.usage.input_tokens == 7


def test_a_tool_call_repeated_in_every_delta_is_one_block() -> None:
    # llama.cpp's server repeats the call's id, type and name beside each arguments piece
    none = {"role": None, "content": None, "function_call": None, "tool_calls": None}
    pieces = ['{"', "city", '": "Paris"}']
    calls = [
        {
            **none,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call__0_get_weather_cmpl-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": piece},
                }
            ],
        }
        for piece in pieces
    ]
    upstream = [_chunk({**none, "role": "assistant"}), *map(_chunk, calls)]
    stream = ChatEvents(OpenAIEvents(False), "m")
    raw = b"".join(stream.feed(_sse(c)) for c in [*upstream, _chunk(none, "tool_calls")])
    raw += stream.feed(_sse("[DONE]"))
    events = _events(raw)
    starts = [e for name, e in events if name == "content_block_start"]
    assert [(b.content_block.type, b.content_block.name) for b in starts] == [
        ("tool_use", "get_weather")
    ]
    assert starts[0].content_block.id == "call__0_get_weather_cmpl-1"
    deltas = [e.delta.partial_json for name, e in events if name == "content_block_delta"]
    assert deltas == ["".join(pieces)]
    assert events[-2][1].delta.stop_reason == "tool_use"
    assert (stream.text_chars, stream.text_chunks) == (len("".join(pieces)), 3)


def test_chat_stream_cut_short_fails() -> None:
    stream = ChatEvents(OpenAIEvents(True), "m")
    stream.feed(_sse(_chunk({"content": "x"})))
    assert (stream.text_chars, stream.text_chunks) == (1, 1)  # the chat stream's own count
    with pytest.raises(StreamFailed):
        stream.end()


def _native(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


def test_native_stream_passes_events_on_and_meters() -> None:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 1},
    }
    wire = b"".join(
        [
            _native("message_start", {"type": "message_start", "message": message}),
            _native("ping", {"type": "ping"}),
            _native(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _native(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hello"},
                },
            ),
            _native(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": " there"},
                },
            ),
            _native("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _native(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 3},
                },
            ),
            _native("message_stop", {"type": "message_stop"}),
        ]
    )
    stream = NativeEvents("claude")
    out = stream.feed(wire[:50]) + stream.feed(wire[50:])
    assert out == wire
    assert stream.done
    assert stream.usage == (9, 3)
    # Counted for an estimate, should a provider ever leave usage out.
    assert (stream.text_chars, stream.text_chunks) == (11, 2)


def test_native_stream_error_event_fails() -> None:
    stream = NativeEvents("claude")
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    with pytest.raises(StreamFailed, match="busy"):
        stream.feed(_native("error", error))


def test_tool_result_images_follow_as_user_content() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    chat = to_chat(
        _request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": [image]},
                    ],
                }
            ]
        )
    )
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        },
    ]


def _interleaved_calls() -> list[dict[str, Any] | str]:
    """Two parallel tool calls whose argument pieces arrive interleaved (their indexes say
    which call each piece belongs to)."""

    def piece(index: int, arguments: str, **head: Any) -> dict[str, Any]:
        call = {"index": index, **head, "function": {"arguments": arguments, **head.pop("f", {})}}
        return _chunk({"tool_calls": [call]})

    return [
        _chunk({"role": "assistant"}),
        piece(0, "", id="call_a", type="function", f={"name": "fa"}),
        piece(1, "", id="call_b", type="function", f={"name": "fb"}),
        piece(0, '{"x":'),
        piece(1, '{"y":2}'),
        piece(0, "1}"),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]


def test_interleaved_parallel_tool_calls_keep_their_own_blocks() -> None:
    stream = ChatEvents(OpenAIEvents(False), "m")
    events = _events(b"".join(stream.feed(_sse(c)) for c in _interleaved_calls()))
    blocks: dict[int, list[str]] = {}
    heads, stopped = {}, []
    for name, e in events:
        if name == "content_block_start":
            heads[e.index] = (e.content_block.id, e.content_block.name)
            blocks[e.index] = []
        elif name == "content_block_delta":
            assert e.index not in stopped
            blocks[e.index].append(e.delta.partial_json)
        elif name == "content_block_stop":
            stopped.append(e.index)
    assert heads == {0: ("call_a", "fa"), 1: ("call_b", "fb")}
    assert {i: "".join(p) for i, p in blocks.items()} == {0: '{"x":1}', 1: '{"y":2}'}
    assert sorted(stopped) == [0, 1]


def test_tool_arguments_cut_off_with_the_answer_are_an_empty_input() -> None:
    cut = {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": "ab'}}
    answer = _chat_answer(content=None, tool_calls=[cut])
    answer["choices"][0]["finish_reason"] = "length"
    m = anthropic.types.Message.model_validate(messages_to_chat.from_chat(answer))
    assert m.stop_reason == "max_tokens"
    assert [(b.type, getattr(b, "input", None)) for b in m.content] == [("tool_use", {})]
    answer["choices"][0]["finish_reason"] = "tool_calls"  # not cut: the answer is broken
    with pytest.raises(json.JSONDecodeError):
        messages_to_chat.from_chat(answer)


def _streamed_call(arguments: list[str], finish: str) -> list[dict[str, Any] | str]:
    head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "w"}}
    pieces = [
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in arguments
    ]
    return [_chunk({"role": "assistant", "tool_calls": [head]}), *pieces, _chunk({}, finish)]


@pytest.mark.parametrize(
    "arguments", [['{"a": ', "nope}"], ["{not json"], ["[" * 2000, "]" * 2000]]
)
def test_streamed_tool_arguments_that_are_not_json_fail_before_any_piece_passes(
    arguments: list[str],
) -> None:
    stream = ChatEvents(OpenAIEvents(False), "m")
    sent = b"".join(stream.feed(_sse(c)) for c in _streamed_call(arguments, "tool_calls"))
    assert b"input_json_delta" not in sent  # held: the client's parser never sees a piece
    with pytest.raises(StreamFailed, match="tool call arguments are not JSON"):
        stream.feed(_sse("[DONE]"))


def test_streamed_tool_arguments_cut_off_with_the_answer_are_an_empty_input() -> None:
    stream = ChatEvents(OpenAIEvents(False), "m")
    chunks = [*_streamed_call(['{"a": "ab'], "length"), "[DONE]"]
    events = _events(b"".join(stream.feed(_sse(c)) for c in chunks))
    assert [name for name, _ in events].count("content_block_delta") == 0
    assert events[-2][1].delta.stop_reason == "max_tokens"
    assert stream.done


_START = {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 1}}}
_TEXT_BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}


def _text_delta(index: Any, text: Any) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


@pytest.mark.parametrize(
    ("events", "said"),
    [
        ([{"type": "message_stop"}], "does not begin with message_start"),
        ([{"type": "message_start", "message": "x"}], "does not begin with message_start"),
        ([_START, _START], "a second message_start"),
        ([_START, {**_TEXT_BLOCK, "index": 1}], "out of order"),
        ([_START, {**_TEXT_BLOCK, "index": True}], "out of order"),
        ([_START, {**_TEXT_BLOCK, "content_block": "text"}], "without a type"),
        ([_START, _text_delta(0, "hi")], "not open"),
        ([_START, _TEXT_BLOCK, _text_delta(1, "hi")], "not open"),
        ([_START, _TEXT_BLOCK, _text_delta(0, 7)], "without its 'text'"),
        ([_START, _TEXT_BLOCK, {"type": "content_block_delta", "index": 0, "delta": 1}], "object"),
        ([_START, {"type": "content_block_stop", "index": 0}], "not open"),
        ([_START, _TEXT_BLOCK, {"type": "message_stop"}], "while a content block is open"),
        ([_START, {"type": "message_delta", "delta": None}], "without a delta object"),
        ([_START, ("ping", {"type": "message_stop"})], "named 'ping' carries another type"),
        ([_START, ("message_stop", [])], "not a JSON object"),
    ],
)
def test_a_native_stream_out_of_shape_or_order_fails_before_its_event_passes(
    events: list[Any], said: str
) -> None:
    stream = NativeEvents("claude")
    named = [e if isinstance(e, tuple) else (e["type"], e) for e in events]
    *good, (name, last) = named
    for good_name, payload in good:
        assert stream.feed(_native(good_name, payload))  # passed on
    with pytest.raises(StreamFailed, match=said):
        stream.feed(f"event: {name}\ndata: {json.dumps(last)}\n\n".encode())
