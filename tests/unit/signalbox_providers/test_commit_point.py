"""What every stream translator says of its commit point (``committed``: the client's bytes
carry a token), and the answers and stream events that are invalid whatever the ingress."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signalbox_providers import dialects, streams
from signalbox_providers.dialects.base import InvalidAnswer, StreamFailed, StreamTranslator
from signalbox_providers.dialects.openai import checked_answer
from signalbox_providers.outcomes import Outcome, classify_status
from signalbox_providers.translate.messages_to_anthropic import NativeEvents
from signalbox_providers.translate.messages_to_chat import ChatEvents
from signalbox_providers.translate.responses_to_chat import ChatResponseEvents
from signalbox_providers.translate.responses_to_openai import NativeResponseEvents


def _chunk(delta: dict[str, Any], finish: Any = None, index: Any = 0) -> bytes:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    event = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps({**event, "choices": [choice]}).encode() + b"\n\n"


ROLE = _chunk({"role": "assistant", "content": ""})
TEXT = _chunk({"content": "Hi"})
FINISH = _chunk({}, "stop")


def _anthropic(payload: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(), json.dumps(payload).encode())


START = _anthropic({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3}}})
BLOCK = _anthropic({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
DELTA = _anthropic(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
)


def _whole(translator: StreamTranslator, data: bytes) -> bytes:
    """A whole stream of ``data`` through ``translator``: fed, then ended."""
    return translator.feed(data) + translator.end()


def _openai() -> StreamTranslator:
    return streams.OpenAIEvents(client_usage=False)


CHAT_TRANSLATORS = {
    "openai": _openai,
    "messages-over-chat": lambda: ChatEvents(_openai(), "m"),
    "responses-over-chat": lambda: ChatResponseEvents(_openai(), {"input": "hi"}, "m"),
}


@pytest.mark.parametrize("make", CHAT_TRANSLATORS.values(), ids=CHAT_TRANSLATORS.keys())
def test_a_role_chunk_is_not_a_token_and_text_is(make: Any) -> None:
    translator = make()
    translator.feed(ROLE)
    assert not translator.committed
    translator.feed(TEXT)
    assert translator.committed


@pytest.mark.parametrize(
    "token",
    [
        _chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}),
        FINISH,
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"refusal": "no"}),
    ],
    ids=["tool-call", "finish", "reasoning", "refusal"],
)
def test_tool_calls_finishes_and_reasoning_are_tokens(token: bytes) -> None:
    translator = _openai()
    translator.feed(ROLE + token)
    assert translator.committed


def test_an_anthropic_stream_commits_at_its_first_text_not_at_its_start() -> None:
    for translator in (streams.anthropic_events("m", False), NativeEvents("m")):
        translator.feed(START + BLOCK)
        assert not translator.committed, type(translator).__name__
        translator.feed(DELTA)
        assert translator.committed, type(translator).__name__


def test_an_ollama_stream_commits_at_its_first_text() -> None:
    translator = streams.ollama_lines("m", False)
    translator.feed(b'{"model": "m", "message": {"role": "assistant", "content": ""}}\n')
    assert not translator.committed
    translator.feed(b'{"model": "m", "message": {"role": "assistant", "content": "Hi"}}\n')
    assert translator.committed


def test_a_responses_stream_commits_at_its_first_delta() -> None:
    translator = NativeResponseEvents()
    created = {"type": "response.created", "response": {"id": "r1"}}
    item = {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message"}}
    delta = {"type": "response.output_text.delta", "output_index": 0, "delta": "Hi"}
    translator.feed(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (created, item)))
    assert not translator.committed
    translator.feed(b"data: " + json.dumps(delta).encode() + b"\n\n")
    assert translator.committed


INVALID_EVENTS = {
    "after-finish": TEXT + FINISH + TEXT,
    "stray-index": _chunk({"content": "Hi"}, index=3),
    "content-number": _chunk({"content": 5}),
    "finish-number": _chunk({}, 7),
    "negative-index": _chunk({"content": "Hi"}, index=-1),
}


@pytest.mark.parametrize("make", CHAT_TRANSLATORS.values(), ids=CHAT_TRANSLATORS.keys())
@pytest.mark.parametrize("events", INVALID_EVENTS.values(), ids=INVALID_EVENTS.keys())
def test_an_odd_chat_stream_fails_in_every_ingress(make: Any, events: bytes) -> None:
    with pytest.raises(StreamFailed):
        _whole(make(), ROLE + events)


def test_two_choices_may_interleave_in_order() -> None:
    translator = _openai()
    out = translator.feed(_chunk({"content": "a"}) + _chunk({"content": "b"}, index=1))
    out += translator.feed(_chunk({}, "stop") + _chunk({}, "stop", index=1) + b"data: [DONE]\n\n")
    assert out.count(b"data: ") == 5


@pytest.mark.parametrize(
    "translator",
    [streams.anthropic_events("m", False), NativeEvents("m")],
    ids=["anthropic-to-chat", "anthropic-native"],
)
def test_an_anthropic_stream_that_stops_before_its_message_delta_fails(
    translator: StreamTranslator,
) -> None:
    stop = _anthropic({"type": "content_block_stop", "index": 0})
    with pytest.raises(StreamFailed):
        _whole(translator, START + BLOCK + DELTA + stop + _anthropic({"type": "message_stop"}))


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"index": 0, "message": {"content": 5}, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": 7}]},
    ],
    ids=["no-choices", "content-number", "finish-number"],
)
def test_an_answer_without_usable_choices_is_invalid(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidAnswer):
        checked_answer(json.dumps(body).encode(), "choices", "message")


def test_an_answer_whose_content_is_a_list_of_parts_is_valid() -> None:
    body = {"choices": [{"index": 0, "message": {"content": [{"type": "text", "text": "x"}]}}]}
    checked_answer(json.dumps(body).encode(), "choices", "message")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (402, None),
        (402, {"error": {"message": "Insufficient credits"}}),
        (429, {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}),
        (400, {"type": "error", "error": {"type": "billing_error", "message": "low"}}),
    ],
    ids=["402", "openrouter-402", "openai-insufficient-quota", "anthropic-billing"],
)
def test_a_spent_quota_is_its_own_outcome(status: int, body: Any) -> None:
    assert classify_status(status, body) == Outcome.QUOTA_EXHAUSTED
    for dialect in dialects.DIALECTS.values():
        assert dialect.classify(status, body) == Outcome.QUOTA_EXHAUSTED


def test_an_ordinary_429_is_still_a_rate_limit() -> None:
    body = {"error": {"type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    assert classify_status(429, body) == Outcome.RATE_LIMITED


STOP_BLOCK = _anthropic({"type": "content_block_stop", "index": 0})
MESSAGE_DELTA = _anthropic(
    {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 1}}
)
MESSAGE_STOP = _anthropic({"type": "message_stop"})
WHOLE_STREAMS: dict[str, tuple[Any, bytes, list[str]]] = {
    "openai": (_openai, ROLE + TEXT + FINISH + b"data: [DONE]\n\n", ["stop"]),
    "messages-over-chat": (CHAT_TRANSLATORS["messages-over-chat"], ROLE + TEXT + FINISH, ["stop"]),
    "responses-over-chat": (
        CHAT_TRANSLATORS["responses-over-chat"],
        ROLE + TEXT + FINISH,
        ["stop"],
    ),
    "anthropic-to-chat": (
        lambda: streams.anthropic_events("m", False),
        START + BLOCK + DELTA + STOP_BLOCK + MESSAGE_DELTA + MESSAGE_STOP,
        ["length"],
    ),
    "anthropic-native": (
        lambda: NativeEvents("m"),
        START + BLOCK + DELTA + STOP_BLOCK + MESSAGE_DELTA + MESSAGE_STOP,
        ["length"],
    ),
    "ollama": (
        lambda: streams.ollama_lines("m", False),
        b'{"model": "m", "message": {"role": "assistant", "content": "Hi"}}\n'
        b'{"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,'
        b' "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 1}\n',
        ["stop"],
    ),
}


@pytest.mark.parametrize(("make", "data", "reasons"), WHOLE_STREAMS.values(), ids=WHOLE_STREAMS)
def test_every_translator_says_why_its_stream_finished(
    make: Any, data: bytes, reasons: list[str]
) -> None:
    translator = make()
    assert translator.finish_reasons == []
    _whole(translator, data)
    assert translator.finish_reasons == reasons


def test_a_responses_stream_finishes_with_its_status() -> None:
    translator = NativeResponseEvents()
    events = [
        {"type": "response.created", "response": {"id": "r1"}},
        {"type": "response.completed", "response": {"id": "r1", "status": "completed"}},
    ]
    translator.feed(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events))
    assert translator.finish_reasons == ["completed"]
