"""What a Responses API stream must look like before its events pass to a client as they are:
the shape and order the official SDKs rely on when they build a response from the events.

``response.created`` first, with its response; output items added in index order, and every
event that names an output item (or a content part of one) naming one already added; deltas are
text; the closing ``response.*`` event carries its response. An event's SSE name, when it has
one, is its payload's type. Event types added to the API later pass with only those checks.
"""

from __future__ import annotations

from typing import Any

from signalbox_providers.sse import event_type

_WITH_RESPONSE = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete"}
)


class EventOrder:
    """The events of one stream so far; ``check`` each before it is passed on."""

    def __init__(self) -> None:
        self._started = False
        self._parts: list[int] = []  # per output item added, the content parts added to it

    def check(self, name: str | None, payload: Any) -> None:
        """ValueError unless ``payload`` (an SSE event named ``name``) may come next."""
        kind = event_type(name, payload)
        if kind == "error":  # the stream's end, told by the caller
            return
        if not self._started and kind != "response.created":
            raise ValueError("the stream does not begin with response.created")
        self._started = True
        if kind in _WITH_RESPONSE and type(payload.get("response")) is not dict:
            raise ValueError(f"a {kind} without its response")
        if "output_index" in payload:
            self._item(kind, payload)
        if "delta" in payload and type(payload["delta"]) is not str:
            raise ValueError(f"a {kind} whose delta is not text")

    def _item(self, kind: Any, payload: dict[str, Any]) -> None:
        at = payload["output_index"]
        if kind == "response.output_item.added":
            if at != len(self._parts) or type(at) is not int:
                raise ValueError(f"an output item added out of order (expected {len(self._parts)})")
            if type(payload.get("item")) is not dict:
                raise ValueError("an output item that is not an object")
            self._parts.append(0)
            return
        if type(at) is not int or not 0 <= at < len(self._parts):
            raise ValueError(f"a {kind} for an output item never added")
        if "content_index" not in payload:
            return
        part = payload["content_index"]
        if kind == "response.content_part.added":
            if part != self._parts[at] or type(part) is not int:
                raise ValueError("a content part added out of order")
            self._parts[at] += 1
        elif type(part) is not int or not 0 <= part < self._parts[at]:
            raise ValueError(f"a {kind} for a content part never added")
