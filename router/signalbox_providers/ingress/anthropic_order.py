"""What an Anthropic Messages stream must look like before its events pass to a client as they
are: the shape and order the official SDKs rely on when they build a message from the events.

One ``message_start`` first; content blocks started in index order, each receiving deltas only
while it is open and stopped once; every delta an object, with the field its type names; no
``message_stop`` while a block is open. An event's SSE name, when it has one, is its payload's
type. Event types added to the API later pass unchecked.
"""

from __future__ import annotations

from typing import Any

from signalbox_providers.sse import event_type

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
