"""A streamed answer collected as it is sent, into the one chat.completion the cache keeps."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from signalbox_providers.streams import OpenAIEvents
from signalbox_router.cache.stream_capture import Capture

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def event(**choice: Any) -> bytes:
    return b"data: " + orjson.dumps({**BASE, "choices": [{"index": 0, **choice}]}) + b"\n\n"


STREAM = b"".join(
    [
        event(delta={"role": "assistant", "content": ""}),
        event(delta={"content": "Hello"}),
        event(delta={"content": " world"}),
        event(delta={}, finish_reason="stop"),
        b"data: " + orjson.dumps({**BASE, "choices": [], "usage": {"total_tokens": 5}}) + b"\n\n",
        b"data: [DONE]\n\n",
    ]
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_a_whole_stream_in_any_pieces_becomes_one_answer(size: int) -> None:
    capture = Capture(10_000)
    for i in range(0, len(STREAM), size):
        capture.feed(STREAM[i : i + size])
    answer = capture.answer()
    assert answer is not None
    assert orjson.loads(answer) == {
        "id": "c1",
        "created": 7,
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"total_tokens": 5},
    }


def test_tool_call_pieces_are_joined() -> None:
    capture = Capture(10_000)
    first = {
        "index": 0,
        "id": "t1",
        "type": "function",
        "function": {"name": "get", "arguments": ""},
    }
    capture.feed(event(delta={"tool_calls": [first]}))
    capture.feed(event(delta={"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}))
    capture.feed(event(delta={"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}))
    capture.feed(event(delta={}, finish_reason="tool_calls") + b"data: [DONE]\n\n")
    answer = capture.answer()
    assert answer is not None
    message = orjson.loads(answer)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}
    ]


def test_a_call_id_and_name_repeated_in_every_delta_are_kept_once() -> None:
    # llama.cpp's server repeats id, type and name beside each piece of the arguments; the
    # router's stream reader sends them once (tool_call_heads), and the cache keeps what it sent
    upstream = OpenAIEvents(client_usage=False)
    capture = Capture(10_000)
    for piece in ('{"city"', ': "Paris"}'):
        function = {"name": "get_weather", "arguments": piece}
        call = {"index": 0, "id": "call__0_get_weather_cmpl-1", "type": "function"}
        delta = {"role": None, "content": None, "function_call": function}
        capture.feed(
            upstream.feed(event(delta={**delta, "tool_calls": [{**call, "function": function}]}))
        )
    capture.feed(upstream.feed(event(delta={"tool_calls": None}, finish_reason="tool_calls")))
    capture.feed(upstream.feed(b"data: [DONE]\n\n"))
    answer = capture.answer()
    assert answer is not None
    message = orjson.loads(answer)["choices"][0]["message"]
    function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    call = {"id": "call__0_get_weather_cmpl-1", "type": "function", "function": function}
    assert message["tool_calls"] == [call]


@pytest.mark.parametrize(
    "stream",
    [
        STREAM.replace(b"data: [DONE]\n\n", b""),  # cut before the end
        STREAM[: len(STREAM) // 2],
        event(delta={"content": "x"}) + b'data: {"error": {"message": "boom"}}\n\n[DONE]',
        event(delta={"content": "x"}) + b"data: {not json\n\ndata: [DONE]\n\n",
        b"data: [DONE]\n\n",  # nothing in it
    ],
    ids=["no-done", "half", "error-event", "garbage", "empty"],
)
def test_a_stream_that_did_not_end_cleanly_gives_nothing(stream: bytes) -> None:
    capture = Capture(10_000)
    capture.feed(stream)
    assert capture.answer() is None


def test_a_stream_over_the_limit_gives_nothing() -> None:
    capture = Capture(len(STREAM) - 1)
    capture.feed(STREAM)
    assert capture.answer() is None
