"""A stream's text chunks read by their shape: the same answers as reading every event in full.

``TextChunkShape`` learns only from a plain text chunk and reads a later event only when it is
that chunk with another JSON string for its text; everything else is read in full. The last
check runs seeded random streams, hostile events included, through ``OpenAIEvents`` with the
shape and without it and asserts the same bytes, failures and counts.
"""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from signalbox_providers.dialects import StreamFailed
from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.text_chunk_shape import TextChunkShape


def chunk(delta: Any, finish: Any = None, index: Any = 0, **extra: Any) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1765000000,
        "model": "gpt-4o-mini",
        "choices": [choice],
        **extra,
    }


def payload(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


TEXT = chunk({"content": "Hello"})
SHAPE = TextChunkShape.of(payload(TEXT), TEXT)


def test_a_plain_text_chunk_has_a_shape_and_its_siblings_are_read_by_their_text() -> None:
    assert SHAPE is not None
    for text in [" world", 'a "quoted" \\ back\\slash', "é ✓ \u2028", "x" * 5000, ""]:
        assert SHAPE.text(payload(chunk({"content": text}))) == text
    # Python's json writes a space after each colon: found all the same
    spaced = json.dumps(TEXT).encode()
    shape = TextChunkShape.of(spaced, TEXT)
    assert shape is not None
    assert shape.text(json.dumps(chunk({"content": "more"})).encode()) == "more"


@pytest.mark.parametrize(
    "other",
    [
        chunk({"role": "assistant", "content": ""}),  # another delta: its own shape
        chunk({"content": "x"}, "stop"),  # a finish
        chunk({"content": "x"}, index=1),  # another choice
        chunk({"content": "x"}, usage={"prompt_tokens": 1, "completion_tokens": 1}),
        {**chunk({"content": "x"}), "id": "chatcmpl-8"},  # another head
        chunk({"content": 5}),  # not text
        chunk({"content": None}),
        chunk({"content": ["x"]}),
    ],
)
def test_an_event_of_another_shape_is_left_to_the_full_read(other: dict[str, Any]) -> None:
    assert SHAPE is not None
    assert SHAPE.text(payload(other)) is None


@pytest.mark.parametrize(
    "middle",
    [
        b'"a","tool_calls":[{"index":0}],"x":"b"',  # valid JSON overall, but not one string
        b'"a"},"finish_reason":"stop","x":{"y":"b"',
        b"5",
        b"null",
        b'"unterminated',
        b'"a"\n',
        b"",
    ],
)
def test_bytes_between_head_and_tail_count_only_when_they_are_one_json_string(
    middle: bytes,
) -> None:
    assert SHAPE is not None
    assert SHAPE.text(SHAPE.head + middle + SHAPE.tail) is None


@pytest.mark.parametrize(
    "value",
    [
        chunk({"content": "x"}, "stop"),
        chunk({"content": "x"}, index=1),
        chunk({"content": "x", "reasoning_content": "y"}),
        chunk({"content": "x", "tool_calls": []}),
        chunk({"content": "x"}, usage={"prompt_tokens": 1, "completion_tokens": 1}),
        {**chunk({"content": "x"}), "choices": [chunk({"content": "x"})["choices"][0]] * 2},
        {**chunk({"content": "x"}), "note": {"content": "y"}},  # two "content" keys
        {**TEXT, "choices": [{"index": 0, "text": "x", "delta": {"content": ""}}]},
    ],
)
def test_only_a_plain_text_chunk_gives_a_shape(value: dict[str, Any]) -> None:
    assert TextChunkShape.of(payload(value), value) is None


def test_an_event_with_line_breaks_gives_no_shape() -> None:
    assert TextChunkShape.of(json.dumps(TEXT, indent=1).encode(), TEXT) is None


def _random_event(rng: random.Random) -> bytes:
    pick = rng.random()
    text = rng.choice(["", "a", " word", 'q"uote', "back\\slash", "é", "\n", "x" * 40])
    if pick < 0.55:
        value = chunk({"content": text})
    elif pick < 0.6:
        value = chunk({"role": "assistant", "content": text})
    elif pick < 0.65:
        value = {**chunk({"content": text}), "created": rng.randint(1, 3)}
    elif pick < 0.7:
        value = chunk({}, "stop")
    elif pick < 0.74:
        value = chunk({"content": text}, index=rng.choice([1, 2, -1, "0"]))
    elif pick < 0.78:
        value = chunk({"content": rng.choice([5, None, [], {"a": 1}])})
    elif pick < 0.82:
        value = chunk({"content": text}, finish=rng.choice([7, "length", None]))
    elif pick < 0.86:
        call = {"index": 0, "id": "call_1", "type": "function", "function": {"arguments": text}}
        value = chunk({"tool_calls": [call]})
    elif pick < 0.9:
        value = {
            **chunk({"content": text}),
            "choices": [],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3},
        }
    elif pick < 0.93:
        return b"data: [DONE]\n\n"
    elif pick < 0.96:
        return b'data: {"error":{"message":"overloaded"}}\n\n'
    else:  # the text's string spliced: valid JSON with a key the shape never held
        good = payload(chunk({"content": "a"}))
        return b"data: " + good.replace(b'"a"', b'"a","tool_calls":[{"index":3}]') + b"\n\n"
    return b"data: " + payload(value) + b"\n\n"


def _outcome(events: list[bytes], reads: list[int]) -> tuple[Any, ...]:
    relay = OpenAIEvents(client_usage=True)
    out: list[bytes] = []
    try:
        data, start = b"".join(events), 0
        for size in reads:
            out.append(relay.feed(data[start : start + size]))
            start += size
        out.append(relay.feed(data[start:]))
        out.append(relay.end())
        failure = None
    except StreamFailed as exc:
        failure = str(exc)
    return b"".join(out), failure, relay.text_chars, relay.text_chunks, relay.committed, relay.usage


@pytest.mark.parametrize("seed", range(300))
def test_random_streams_read_by_shape_or_in_full_come_out_the_same(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    events = [_random_event(rng) for _ in range(rng.randint(1, 30))]
    total = sum(map(len, events))
    reads = sorted(rng.sample(range(1, total), min(total - 1, rng.randint(0, 8))))
    sizes = [b - a for a, b in zip([0, *reads], reads, strict=False)]
    shaped = _outcome(events, sizes)
    monkeypatch.setattr(TextChunkShape, "of", classmethod(lambda cls, p, c: None))
    assert shaped == _outcome(events, sizes)
