"""The SSE and NDJSON stream parsers: chunk boundaries anywhere must not change what comes out."""

from __future__ import annotations

import pytest

from signalbox_providers.sse import NdjsonParser, SseEvent, SseParser

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n'
    b"\n"
    b"event: content_block_delta\r\n"
    b"data: first line\r\n"
    b"data:second line, no space\r\n"
    b"data:  two spaces keep one\r\n"
    b"id: 7\r\n"
    b"retry: 1000\r\n"
    b"\r\n"
    b"data: caf\xc3\xa9 \xe2\x9c\x93\n"
    b"\n"
    b"event: ping\n"
    b"\n"  # no data: not dispatched
    b"data\n"  # a field with no colon: empty data
    b"\n"
    b"event: old\rdata: bare CR line ends\r\r"
    b"data: {unfinished"
)

EXPECTED = [
    SseEvent("message_start", '{"type":"message_start"}'),
    SseEvent("content_block_delta", "first line\nsecond line, no space\n two spaces keep one"),
    SseEvent(None, "café ✓"),
    SseEvent(None, ""),
    SseEvent("old", "bare CR line ends"),
]


def _feed_in(parser: SseParser, data: bytes, size: int) -> list[SseEvent]:
    events: list[SseEvent] = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events


def test_whole_stream() -> None:
    assert SseParser().feed(STREAM) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    assert _feed_in(SseParser(), STREAM, size) == EXPECTED


def test_crlf_split_between_reads_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [SseEvent(None, "a")]
    assert parser.feed(b"\ndata: b\n\n") == [SseEvent(None, "b")]


def test_empty_feeds_keep_a_pending_cr() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [SseEvent(None, "a")]


def test_event_name_does_not_leak_into_the_next_event() -> None:
    events = SseParser().feed(b"event: one\ndata: 1\n\ndata: 2\n\n")
    assert events == [SseEvent("one", "1"), SseEvent(None, "2")]


def test_comment_only_stream_yields_nothing() -> None:
    assert SseParser().feed(b": hello\n\n: again\n\n") == []


def test_leading_bom_is_dropped_even_when_split() -> None:
    parser = SseParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb") == []
    assert parser.feed(b"\xbfdata: x\n\n") == [SseEvent(None, "x")]


def test_incomplete_event_is_held_back() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\ndata: b\n") == []
    assert parser.feed(b"\n") == [SseEvent(None, "a\nb")]


NDJSON = b'{"a": 1}\n{"b": "caf\xc3\xa9"}\r\n\n{"done": true}\n'


@pytest.mark.parametrize("size", [1, 2, 5, 100])
def test_ndjson_split_lines(size: int) -> None:
    parser = NdjsonParser()
    objects = []
    for i in range(0, len(NDJSON), size):
        objects += parser.feed(NDJSON[i : i + size])
    assert objects == [{"a": 1}, {"b": "café"}, {"done": True}]
    assert parser.flush() == []


def test_ndjson_last_line_without_newline_needs_flush() -> None:
    parser = NdjsonParser()
    assert parser.feed(b'{"a": 1}\n{"b": 2}') == [{"a": 1}]
    assert parser.flush() == [{"b": 2}]


def test_ndjson_malformed_line_raises() -> None:
    parser = NdjsonParser()
    with pytest.raises(ValueError, match="malformed NDJSON"):
        parser.feed(b'{"a": 1}\n{"b": \n')


def test_ndjson_non_object_raises() -> None:
    with pytest.raises(ValueError, match="not an object"):
        NdjsonParser().feed(b"[1, 2]\n")
