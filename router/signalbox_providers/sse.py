"""Incremental parsers for the two streaming framings providers use: SSE and NDJSON.

The router relays upstream streams as bytes arrive, and network reads cut those bytes anywhere:
inside an event, inside a line terminator, even inside a multi-byte UTF-8 character. These
parsers buffer exactly what they must and hand back complete events, so the translation layer
never sees a partial frame. Sans-I/O: feed them bytes from any client.

``SseParser`` follows the WHATWG event-stream rules that matter for LLM APIs (Anthropic's
Messages stream, OpenAI's chunks): ``\\n``, ``\\r\\n`` and ``\\r`` line ends, ``:`` comments,
multi-line ``data:``, a leading byte-order mark. ``id:`` and ``retry:`` are read and dropped:
no provider API relies on reconnection. ``NdjsonParser`` reads Ollama's one-object-per-line
streams.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
MAX_EVENT = 1 << 20  # bytes one event (or NDJSON line) may take before the stream is refused


class EventTooLarge(ValueError):
    """One event or line grew past the parser's bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an upstream stream event exceeds {limit} bytes")


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its ``event:`` name (None when absent) and its joined data lines."""

    event: str | None
    data: str


class SseParser:
    """Turns a byte stream into ``SseEvent``s, however the bytes are chunked."""

    def __init__(self, max_event: int = MAX_EVENT) -> None:
        self._max = max_event
        self._buffer = bytearray()
        self._scanned = 0  # the buffer before this offset holds no line end
        self._size = 0  # data bytes of the event being read
        self._at_start = True  # a byte-order mark may only open the stream
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" belongs to it
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk``; return the events it completed, in order."""
        if chunk and self._skip_lf:
            self._skip_lf = False
            chunk = chunk.removeprefix(b"\n")
        self._buffer += chunk
        if self._at_start and not self._strip_bom():
            return []
        events: list[SseEvent] = []
        for line in self._complete_lines():
            event = self._process(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _strip_bom(self) -> bool:
        """Drop a leading BOM; False while the buffer could still be the start of one."""
        if len(self._buffer) < len(_BOM) and _BOM.startswith(self._buffer):
            return False
        if self._buffer.startswith(_BOM):
            del self._buffer[: len(_BOM)]
        self._at_start = False
        return True

    def _complete_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        for match in _LINE_END.finditer(self._buffer, self._scanned):
            lines.append(bytes(self._buffer[start : match.start()]))
            start = match.end()
            # A "\r" that ends the buffer may be the first half of a "\r\n" split across reads.
            self._skip_lf = match.group() == b"\r" and start == len(self._buffer)
        del self._buffer[:start]
        self._scanned = len(self._buffer)  # read once: a long line costs linear time
        if len(self._buffer) + self._size > self._max:
            raise EventTooLarge(self._max)
        return lines

    def _process(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._size += len(value)
            if self._size > self._max:
                raise EventTooLarge(self._max)
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event, self._data
        self._event, self._data, self._size = None, [], 0
        if not data:  # per the spec, an event without data is not dispatched
            return None
        return SseEvent(event=event, data="\n".join(data))


class NdjsonParser:
    """Turns a newline-delimited JSON byte stream into objects, however the bytes are chunked."""

    def __init__(self, max_line: int = MAX_EVENT) -> None:
        self._max = max_line
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Consume ``chunk``; return the objects of the lines it completed.

        Raises ValueError for a line that is not a JSON object, EventTooLarge for a line
        longer than the bound.
        """
        end = chunk.rfind(b"\n")  # only the new bytes are searched: linear in the stream
        if end < 0:
            self._buffer += chunk
            if len(self._buffer) > self._max:
                raise EventTooLarge(self._max)
            return []
        complete = bytes(self._buffer) + chunk[:end]
        self._buffer = bytearray(chunk[end + 1 :])
        lines = complete.split(b"\n")
        if any(len(line) > self._max for line in lines) or len(self._buffer) > self._max:
            raise EventTooLarge(self._max)
        return [_parse_line(line) for line in lines if line.strip()]

    def flush(self) -> list[dict[str, Any]]:
        """The object on a last line that had no newline, at the end of the stream."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return [_parse_line(rest)] if rest.strip() else []


def _parse_line(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValueError(f"malformed NDJSON line ({len(line)} bytes)") from exc
    if not isinstance(value, dict):
        raise ValueError("an NDJSON line is not an object")
    return value


def event_type(name: str | None, payload: Any) -> Any:
    """The type of an event's JSON payload. ValueError unless the payload is an object whose
    type is the event's SSE name, when it has one."""
    if type(payload) is not dict:
        raise ValueError("an event is not a JSON object")
    kind = payload.get("type")
    if name and name != kind:
        raise ValueError(f"an event named {name!r} carries another type")
    return kind
