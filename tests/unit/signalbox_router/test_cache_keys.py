"""What the response cache may keep and find: keys, deterministic requests, complete answers,
and a kept answer replayed as an OpenAI stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from signalbox_router.cache import keying

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 3, "temperature": 1}, True),
        ({"temperature": 0.2}, False),
        ({}, False),  # the provider's default temperature samples
        ({"temperature": False}, False),
        ({"seed": True}, False),
        ({"seed": "3"}, False),
    ],
)
def test_only_deterministic_requests_are_cacheable(body: dict[str, Any], expected: bool) -> None:
    assert keying.deterministic(body) is expected


def test_keys_differ_by_tenant_and_request_but_not_by_streaming_or_key_order() -> None:
    key = keying.key(b"Bearer a", BODY)
    assert keying.key(b"Bearer b", BODY) != key
    assert keying.key(b"Bearer a", {**BODY, "max_tokens": 5}) != key
    assert keying.key(b"Bearer a", {**BODY, "stream": True, "user": "x"}) == key
    assert keying.key(b"Bearer a", dict(reversed(list(BODY.items())))) == key
    assert "Bearer" not in key
    assert len(key) == 64


def _answer(*finishes: str | None) -> bytes:
    choices = [
        {"index": i, "message": {"role": "assistant", "content": "x"}, "finish_reason": f}
        for i, f in enumerate(finishes)
    ]
    return orjson.dumps({"id": "c1", "choices": choices})


@pytest.mark.parametrize(
    ("status", "answer", "kept"),
    [
        (200, _answer("stop"), True),
        (200, _answer("tool_calls", "stop"), True),
        (200, _answer("length"), False),
        (200, _answer("stop", "length"), False),
        (200, _answer("content_filter"), False),
        (200, _answer(None), False),
        (200, _answer(), False),
        (500, _answer("stop"), False),
        (200, b"not json", False),
        (200, b"[1]", False),
    ],
)
def test_only_complete_answers_are_kept(status: int, answer: bytes, kept: bool) -> None:
    assert (keying.keepable(status, answer) is not None) is kept


def test_a_kept_answer_replays_as_an_openai_stream() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answer = {
        "id": "c1",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    }
    events = list(keying.replay(answer, include_usage=True))
    assert events[-1] == keying.DONE
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "c1" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["tool_calls"] == [{**call, "index": 0}]
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[2] == {**chunks[2], "choices": [], "usage": answer["usage"]}
    assert len(list(keying.replay(answer, include_usage=False))) == 3
