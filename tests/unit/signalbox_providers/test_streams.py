"""Stream translators, byte for byte: every event parsed before it reaches a client, streams
completed or failed as they ended, events bounded, reassembly linear."""

from __future__ import annotations

import time

import orjson
import pytest

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects
from signalbox_providers.dialects.base import RequestParts
from signalbox_providers.streams import DONE, OpenAIEvents, anthropic_events, ollama_lines


def chunk(text: str | None, finish: str | None = None, **extra: object) -> bytes:
    delta = {"content": text} if text is not None else {}
    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + orjson.dumps(event) + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'


def feed_all(t: OpenAIEvents, data: bytes, step: int) -> bytes:
    return b"".join(t.feed(data[i : i + step]) for i in range(0, len(data), step))


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_events_pass_through_however_the_bytes_are_cut(step: int) -> None:
    data = chunk("Hel") + chunk("lo") + chunk(None, "stop") + USAGE + DONE
    t = OpenAIEvents(client_usage=True)
    assert feed_all(t, data, step) == data
    assert t.done
    assert t.usage == (3, 2)


def test_a_usage_chunk_the_client_did_not_ask_for_is_metered_and_dropped() -> None:
    t = OpenAIEvents(client_usage=False)
    assert t.feed(chunk("a") + USAGE + DONE) == chunk("a") + DONE
    assert t.usage == (3, 2)


def test_crlf_streams_and_comments_are_read() -> None:
    t = OpenAIEvents(client_usage=False)
    out = t.feed(
        b": keep-alive\r\n\r\n" + chunk("a").replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n"
    )
    assert out == chunk("a") + DONE


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"data: {not json\n\n", "malformed"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
        (b'data: {"id": 1}\n\n', "no 'choices'"),
        (b'data: {"error": {"message": "overloaded"}}\n\n', "overloaded"),
        (b'data: {"choices": [], "usage": {"prompt_tokens": "x"}}\n\n', "usage"),
    ],
)
def test_a_bad_event_fails_the_stream_and_never_reaches_the_client(data: bytes, said: str) -> None:
    t = OpenAIEvents(client_usage=True)
    assert t.feed(chunk("ok")) == chunk("ok")
    with pytest.raises(dialects.StreamFailed, match=said):
        t.feed(data)


def test_a_stream_that_finished_but_skipped_done_is_completed() -> None:
    t = OpenAIEvents(client_usage=False)
    t.feed(chunk("a") + chunk(None, "stop"))
    assert t.end() == DONE


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    t = OpenAIEvents(client_usage=False)
    assert t.feed(chunk("a") + chunk(None, "stop").rstrip(b"\n")) == chunk("a")
    assert t.end() == chunk(None, "stop") + DONE


@pytest.mark.parametrize(
    ("data", "client_usage"),
    [(chunk("a"), False), (chunk("a") + chunk(None, "stop"), True)],
    ids=["no-finish", "usage-asked-never-came"],
)
def test_a_stream_cut_before_it_finished_fails(data: bytes, client_usage: bool) -> None:
    t = OpenAIEvents(client_usage=client_usage)
    t.feed(data)
    with pytest.raises(dialects.StreamFailed, match="ended before it finished"):
        t.end()


def test_an_oversized_event_fails_the_stream() -> None:
    t = OpenAIEvents(client_usage=False, max_event=1000)
    t.feed(b'data: {"choices": [{"delta": {"content": "')
    for _ in range(9):
        assert t.feed(b"x" * 100) == b""
    with pytest.raises(dialects.StreamFailed, match="exceeds 1000 bytes"):
        t.feed(b"x" * 100)


def test_reassembly_is_linear_in_the_size_of_an_event() -> None:
    """A 1 MB event in 10-byte reads: a quadratic join would take minutes, not a moment."""

    def cost(size: int) -> float:
        t = OpenAIEvents(client_usage=False, max_event=4 << 20)
        event = chunk("x" * size)
        started = time.process_time()
        out = feed_all(t, event, 10)
        assert out == event
        return time.process_time() - started

    small, large = cost(100_000), cost(1_000_000)
    assert large < 40 * small + 0.5  # linear: about 10x; quadratic would be about 100x


def test_anthropic_and_ollama_streams_are_translated_and_completed() -> None:
    sse = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
        b'"usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":1}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    a = anthropic_events("claude", client_usage=False)
    assert a.feed(sse).endswith(DONE)
    assert a.done
    assert a.usage == (5, 1)
    o = ollama_lines("llama", client_usage=False)
    o.feed(b'{"message":{"content":"Hi"},"done":false}\n')
    out = o.feed(b'{"message":{"content":""},"done":true,"prompt_eval_count":4,"eval_count":1}')
    assert out == b""  # the last line has no newline yet
    assert o.end().endswith(DONE)
    assert o.usage == (4, 1)


def test_a_translated_stream_cut_short_fails() -> None:
    o = ollama_lines("llama", client_usage=False)
    o.feed(b'{"message":{"content":"Hi"},"done":false}\n')
    with pytest.raises(dialects.StreamFailed):
        o.end()
    with pytest.raises(dialects.StreamFailed):
        anthropic_events("c", client_usage=False).feed(b"event: message_start\ndata: {oops\n\n")


ANTHROPIC_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
    b'"usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
)


@pytest.mark.parametrize("count", ["-999995", "1" + "0" * 400, "2.5", '"7"', "true"])
@pytest.mark.parametrize("where", ["message_start", "message_delta"])
def test_an_anthropic_stream_with_a_bad_token_count_fails_and_keeps_its_last_good_usage(
    count: str, where: str
) -> None:
    bad_start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
        b'"usage":{"input_tokens":5,"output_tokens":' + count.encode() + b"}}}\n\n"
    )
    bad_delta = (
        b'event: message_delta\ndata: {"type":"message_delta","delta":{},'
        b'"usage":{"output_tokens":' + count.encode() + b"}}\n\n"
    )
    a = anthropic_events("claude", client_usage=True)
    if where == "message_start":
        with pytest.raises(dialects.StreamFailed, match="not whole numbers"):
            a.feed(bad_start)
        assert a.usage is None
    else:
        a.feed(ANTHROPIC_START)
        with pytest.raises(dialects.StreamFailed, match="not whole numbers"):
            a.feed(bad_delta)
        assert a.usage == (5, 0)  # what metering reads never holds the bad count


def test_an_ollama_stream_with_a_bad_token_count_fails() -> None:
    o = ollama_lines("llama", client_usage=False)
    with pytest.raises(dialects.StreamFailed, match="not whole numbers"):
        o.feed(b'{"message":{"content":""},"done":true,"prompt_eval_count":4,"eval_count":-1}\n')
    assert o.usage is None


def test_anthropic_max_tokens_defaults_to_the_models_max_output_tokens() -> None:
    dialect = dialects.dialect(ProviderType.ANTHROPIC)
    body = {"model": "c", "messages": [{"role": "user", "content": "hi"}]}
    out = dialect.request(RequestParts("chat", "http://h", body, "c", {}, max_output_tokens=1234))
    assert orjson.loads(out.data)["max_tokens"] == 1234
    asked = dialect.request(RequestParts("chat", "http://h", {**body, "max_tokens": 9}, "c", {}))
    assert orjson.loads(asked.data)["max_tokens"] == 9


DEEP = "[" * 50_000 + "]" * 50_000  # past Python's recursion limit, not past an event's size


def test_upstream_events_nested_too_deep_fail_the_stream() -> None:
    event = b'event: content_block_delta\ndata: {"x": ' + DEEP.encode() + b"}\n\n"
    a = anthropic_events("claude", client_usage=False)
    a.feed(ANTHROPIC_START)
    with pytest.raises(dialects.StreamFailed, match="malformed event data"):
        a.feed(event)
    o = ollama_lines("llama", client_usage=False)
    with pytest.raises(dialects.StreamFailed, match="malformed NDJSON line"):
        o.feed(b'{"message": ' + DEEP.encode() + b"}\n")
