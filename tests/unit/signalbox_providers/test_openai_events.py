"""OpenAI-style stream events: a read holding exactly one event (the usual case, taken by a
shortcut) gives the same bytes and the same failures as the event read any other way."""

from __future__ import annotations

import json

import pytest

from signalbox_providers import dialects
from signalbox_providers.streams import OpenAIEvents


def event(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


STREAM = [
    event({"role": "assistant", "content": ""}),
    event({"content": "Hello"}),
    event({"content": " there"}),
    event({}, "stop"),
    b'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]


def run(reads: list[bytes], client_usage: bool) -> tuple[bytes, OpenAIEvents]:
    events = OpenAIEvents(client_usage)
    out = b"".join(events.feed(r) for r in reads)
    return out, events


@pytest.mark.parametrize("client_usage", [True, False])
def test_one_event_per_read_equals_other_framings(client_usage: bool) -> None:
    whole = b"".join(STREAM)
    one_each, events = run(STREAM, client_usage)
    assert events.done
    assert events.usage == (3, 2)
    bytewise, _ = run([whole[i : i + 1] for i in range(len(whole))], client_usage)
    together, _ = run([whole], client_usage)
    assert one_each == bytewise == together
    assert (b'"usage"' in one_each) is client_usage  # the router's own usage chunk is dropped
    assert one_each.endswith(b"data: [DONE]\n\n")


def test_one_event_read_after_a_held_piece_is_joined() -> None:
    events = OpenAIEvents(False)
    first = event({"content": "Hel"})
    assert events.feed(first[:10]) == b""
    assert events.feed(first[10:]) == first


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (b"data: {not json}\n\n", "malformed upstream event"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
        (b'data: {"error": {"message": "overloaded"}}\n\n', "overloaded"),
        (b'data: {"id": "x"}\n\n', "no 'choices' list"),
        (
            b'data: {"choices": [], "usage": {"prompt_tokens": -1, "completion_tokens": 1}}\n\n',
            "not whole numbers",
        ),
        (
            b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1.5}}\n\n',
            "not whole numbers",
        ),
        (
            b'data: {"choices": [], "usage": {"prompt_tokens": 10000000000000000000}}\n\n',
            "not whole numbers",
        ),
        (b'data: {"choices": ["x"]}\n\n', "not an object with an index"),
        (b'data: {"choices": [{"index": [0], "delta": {}}]}\n\n', "not an object with"),
        (b'data: {"choices": [{"index": 0, "delta": "x"}]}\n\n', "delta that is not"),
        (b'data: {"choices": [{"delta": {"tool_calls": {"index": 0}}}]}\n\n', "tool calls"),
        (b'data: {"choices": [{"delta": {"tool_calls": [{"index": {}}]}}]}\n\n', "tool calls"),
        (b'data: {"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]}\n\n', "tool calls"),
        (b'data: {"choices": [{"delta": {"function_call": "f"}}]}\n\n', "function call"),
    ],
)
def test_one_bad_event_per_read_fails_the_stream(read: bytes, message: str) -> None:
    with pytest.raises(dialects.StreamFailed, match=message):
        OpenAIEvents(True).feed(read)


def test_an_oversized_one_event_read_fails_the_stream() -> None:
    read = event({"content": "x" * 200})
    with pytest.raises(dialects.StreamFailed, match="exceeds 100 bytes"):
        OpenAIEvents(True, max_event=100).feed(read)
    assert OpenAIEvents(True, max_event=len(read) - 2).feed(read) == read


def test_nothing_after_done() -> None:
    events = OpenAIEvents(True)
    assert events.feed(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert events.feed(event({"content": "late"})) == b""


def test_an_event_whose_data_spans_lines_reaches_the_client_on_one_line() -> None:
    events = OpenAIEvents(False)
    split = b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "a\\nb"}}]}\n\n'
    out = events.feed(split)
    assert out.startswith(b"data: ")
    assert out.endswith(b"\n\n")
    assert out.count(b"\n") == 2  # a client reads one data line
    assert json.loads(out[6:])["choices"][0]["delta"]["content"] == "a\nb"
