"""Honest metering: an answer whose upstream sent no usage is counted by the router (an estimate,
marked as such in the metrics and the usage summary) and never as 0 tokens."""

from __future__ import annotations

import orjson
import prometheus_client as prom
import pytest

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects, streams
from signalbox_router.metering import estimates
from signalbox_router.metering.meter import Meter
from tests.unit.signalbox_router.test_metering import PRICE, sample

CHAT = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}


def test_the_prompt_counts_four_characters_a_token_plus_overheads() -> None:
    # 3 for the reply, 4 for the message, 40 characters / 4
    assert estimates.prompt_tokens(CHAT) == 3 + 4 + 10
    assert estimates.prompt_tokens({"model": "e", "input": ["abcd", "abcdefgh"]}) == 3


@pytest.mark.parametrize(
    ("chars", "chunks", "completion"),
    [
        (0, 0, 0),
        (9, 0, 3),  # about 4 characters a token, rounded up
        (9, 7, 7),  # a server that streams token by token: one token a chunk
        (400, 7, 100),
    ],
)
def test_the_completion_counts_characters_or_chunks_whichever_is_more(
    chars: int, chunks: int, completion: int
) -> None:
    assert estimates.estimated_usage(CHAT, chars, chunks) == (17, completion)


def test_a_complete_answer_counts_its_content_and_tool_call_arguments() -> None:
    answer = {
        "choices": [
            {
                "message": {
                    "content": "abcdefgh",
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}],
                }
            }
        ]
    }
    assert estimates.answer_text_chars(answer) == 8 + 7
    assert estimates.answer_usage(CHAT, orjson.dumps(answer)) == (17, 4)
    assert estimates.answer_usage(CHAT, b"not json") == (17, 0)


def test_a_text_completion_counts_its_text_plain_and_streamed() -> None:
    answer = {"object": "text_completion", "choices": [{"index": 0, "text": "abcdefgh"}]}
    assert estimates.answer_text_chars(answer) == 8
    events = dialects.dialect(ProviderType.OPENAI_COMPATIBLE).stream("m", False)
    for piece in ("abcd", "efgh"):
        events.feed(b"data: " + orjson.dumps({"choices": [{"index": 0, "text": piece}]}) + b"\n\n")
    assert (events.text_chars, events.text_chunks) == (8, 2)


def test_a_stream_without_usage_still_counts_the_text_it_carried() -> None:
    events = dialects.dialect(ProviderType.OPENAI_COMPATIBLE).stream("m", False)
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    words = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in (" alpha", " be")]
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    for chunk in (role, *words, finish):
        events.feed(b"data: " + orjson.dumps(chunk) + b"\n\n")
    assert events.feed(b"data: [DONE]\n\n") == streams.DONE
    assert events.usage is None
    assert (events.text_chars, events.text_chunks) == (9, 2)


def llama_tool_delta(piece: str) -> dict[str, object]:
    """A delta as llama.cpp's server streams a tool call: id and name repeated in each."""
    function = {"name": "get_weather", "arguments": piece}
    call = {"index": 0, "id": "call__0_get_weather_cmpl-1", "type": "function"}
    return {"function_call": function, "tool_calls": [{**call, "function": function}]}


def test_a_streamed_tool_call_counts_its_arguments_not_its_repeated_name() -> None:
    events = dialects.dialect(ProviderType.OPENAI_COMPATIBLE).stream("m", False)
    role = {"role": "assistant", "content": None, "function_call": None, "tool_calls": None}
    deltas = [role, *map(llama_tool_delta, ['{"', "city", '": "', 'Paris"}']), {}]
    for delta in deltas:
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.feed(b"data: " + orjson.dumps(chunk) + b"\n\n")
    assert events.feed(b"data: [DONE]\n\n") == streams.DONE
    assert (events.text_chars, events.text_chunks) == (len('{"city": "Paris"}'), 4)
    assert estimates.estimated_usage(CHAT, events.text_chars, events.text_chunks)[1] == 5


def test_estimated_tokens_are_labelled_and_summed_apart() -> None:
    meter = Meter()
    meter.record("m", "p", code=200, seconds=0.1, usage=(10, 5), price=PRICE)
    meter.record("m", "p", code=200, seconds=0.1, usage=(17, 3), price=PRICE, estimated=True)
    text = prom.generate_latest(meter.registry).decode()
    mp = {"model": "m", "provider": "p", "direction": "output"}
    assert sample(text, "signalbox_router_tokens_total", **mp, source="upstream") == 5
    assert sample(text, "signalbox_router_tokens_total", **mp, source="estimated") == 3
    row = meter.summary()["data"][0]
    assert row["total_tokens"] == 10 + 5 + 17 + 3
    assert row["estimated_tokens"] == 17 + 3


def test_a_meter_with_only_upstream_usage_shows_no_estimated_series() -> None:
    meter = Meter()
    meter.record("m", "p", code=200, seconds=0.1, usage=(1, 1))
    text = prom.generate_latest(meter.registry).decode()
    assert 'source="estimated"' not in text
    assert meter.summary()["data"][0]["estimated_tokens"] == 0
