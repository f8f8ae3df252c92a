"""An Anthropic Messages client -> an Anthropic provider, which speaks Messages natively: the
client's request goes as sent (only the model name changes), and the answer and the stream go
back as they came, once read and checked.

The stream (``NativeEvents``) is checked event by event for what the official SDKs rely on when
they build a message from the events (``EventOrder``): one ``message_start`` first; content
blocks started in index order, each receiving deltas only while it is open and stopped once;
every delta an object, with the field its type names; no ``message_stop`` while a block is
open. An event's SSE name, when it has one, is its payload's type. Event types added to the API
later pass unchecked. ``chat_to_anthropic``'s reader supplies the errors, the usage and the end.
"""

from __future__ import annotations

from typing import Any

from signalbox_providers.dialects.base import (
    Answer,
    InvalidAnswer,
    StreamFailed,
    Usage,
    loads_object,
)
from signalbox_providers.sse import SseParser, event_type
from signalbox_providers.translate.chat_to_anthropic import AnthropicStream, event_payload
from signalbox_providers.translate.openai_format import (
    UpstreamStreamError,
    carries_token,
    chunk_text_chars,
    note_finishes,
)

_DELTA_TEXT = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}


class EventOrder:
    """The events of one stream so far; ``check`` each before it is passed on."""

    def __init__(self) -> None:
        self._started = False
        self._next = 0  # the index the next content block must have
        self._open: set[int] = set()

    def check(self, name: str | None, payload: Any) -> None:
        """ValueError unless ``payload`` (an SSE event named ``name``) may come next."""
        kind = event_type(name, payload)
        if kind in ("ping", "error"):
            return
        if not self._started:
            if kind != "message_start" or type(payload.get("message")) is not dict:
                raise ValueError("the stream does not begin with message_start")
            self._started = True
        elif kind == "message_start":
            raise ValueError("a second message_start")
        elif kind == "content_block_start":
            self._start(payload)
        elif kind == "content_block_delta":
            self._delta(payload)
        elif kind == "content_block_stop":
            self._stop(payload)
        elif kind == "message_delta" and type(payload.get("delta")) is not dict:
            raise ValueError("a message_delta without a delta object")
        elif kind == "message_stop" and self._open:
            raise ValueError("message_stop while a content block is open")

    def _start(self, payload: dict[str, Any]) -> None:
        block = payload.get("content_block")
        if payload.get("index") != self._next or type(payload.get("index")) is not int:
            raise ValueError(f"a content block starts out of order (expected {self._next})")
        if type(block) is not dict or type(block.get("type")) is not str:
            raise ValueError("a content block without a type")
        self._open.add(self._next)
        self._next += 1

    def _delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if payload.get("index") not in self._open or type(payload.get("index")) is not int:
            raise ValueError("a delta for a content block that is not open")
        if type(delta) is not dict:
            raise ValueError("a content block delta that is not an object")
        field = _DELTA_TEXT.get(delta.get("type"))  # type: ignore[arg-type]
        if field is not None and type(delta.get(field)) is not str:
            raise ValueError(f"a {delta['type']} without its {field!r} text")

    def _stop(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if index not in self._open or type(index) is not int:
            raise ValueError("a stop for a content block that is not open")
        self._open.discard(index)


class NativeEvents:
    """An Anthropic provider's stream, passed on event by event once each was read and checked
    (``anthropic_order``)."""

    def __init__(self, model: str) -> None:
        self._parser = SseParser()
        self._order = EventOrder()
        self._reader = AnthropicStream(model, True)
        self.text_chars = self.text_chunks = 0
        self.committed = False
        self.finish_reasons: list[str] = []

    @property
    def usage(self) -> Usage | None:
        u = self._reader.usage
        return (u.prompt, u.completion) if u is not None else None

    @property
    def done(self) -> bool:
        return self._reader.done

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            for e in self._parser.feed(data):
                if self._reader.done:
                    break
                payload = event_payload(e)  # read once, for the check and the meter
                self._order.check(e.event, payload)
                for chunk in self._reader.take(e.event, payload):
                    chars = chunk_text_chars(chunk)
                    if chars:
                        self.text_chars += chars
                        self.text_chunks += 1
                    if not self.committed:
                        self.committed = any(map(carries_token, chunk["choices"]))
                    note_finishes(chunk, self.finish_reasons)
                name = e.event or "message"
                line = e.data.replace("\n", " ")  # parsed: newlines lie between JSON tokens
                out.append(b"event: " + name.encode() + b"\ndata: " + line.encode() + b"\n\n")
        except (UpstreamStreamError, ValueError, TypeError, RecursionError) as exc:
            raise StreamFailed(f"upstream stream error: {exc}") from exc
        return b"".join(out)

    def end(self) -> bytes:
        if not self._reader.done:
            raise StreamFailed("the upstream stream ended before it finished")
        return b""


_NATIVE_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def native_answer(raw: bytes) -> Answer:
    """An Anthropic provider's complete answer, checked, with its usage (cache reads and writes
    count as input)."""
    body = loads_object(raw, "the answer")
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise InvalidAnswer("the answer is not an Anthropic message")
    usage = body.get("usage")
    if usage is None:
        return Answer(raw, None)
    if type(usage) is not dict:
        raise InvalidAnswer("usage is not an object")
    counts = [usage.get(k) or 0 for k in (*_NATIVE_USAGE, "output_tokens")]
    if any(type(c) is not int or c < 0 for c in counts):
        raise InvalidAnswer("usage token counts are not non-negative integers")
    return Answer(raw, (sum(counts[:-1]), counts[-1]))
