"""An OpenAI Responses client -> a provider that serves the Responses API itself (OpenAI, Azure
OpenAI): the client's request goes as sent (only the model name changes), and the answer and the
stream go back as they came, once read and checked.

The stream (``NativeResponseEvents``) is checked event by event for what the official SDKs rely
on when they build a response from the events (``EventOrder``): ``response.created`` first, with
its response; output items added in index order, and every event that names an output item (or
a content part of one) naming one already added; deltas are text; the closing ``response.*``
event carries its response. An event's SSE name, when it has one, is its payload's type. Event
types added to the API later pass with only those checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from signalbox_providers.dialects.base import (
    Answer,
    InvalidAnswer,
    StreamFailed,
    Usage,
    loads_object,
    usage_of,
)
from signalbox_providers.sse import SseParser, event_type
from signalbox_providers.translate.openai_format import token_count

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


_ENDS = frozenset({"response.completed", "response.incomplete"})


class NativeResponseEvents:
    """An OpenAI provider's own Responses stream, passed on event by event once each was read
    and checked (``responses_order``)."""

    def __init__(self) -> None:
        self._parser = SseParser()
        self._order = EventOrder()
        self.usage: Usage | None = None
        self.text_chars = self.text_chunks = 0
        self._done = False
        self.committed = False
        self.finish_reasons: list[str] = []

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            events = self._parser.feed(data)
        except ValueError as exc:
            raise StreamFailed(str(exc)) from exc
        for e in events:
            if self._done:
                break
            try:
                payload = orjson.loads(e.data)
                self._order.check(e.event, payload)
            except ValueError as exc:  # orjson.JSONDecodeError is one too
                raise StreamFailed(f"malformed upstream event: {exc}") from exc
            kind = payload.get("type") if isinstance(payload, dict) else None
            if not isinstance(kind, str):
                raise StreamFailed("an upstream event has no type")
            if kind in ("error", "response.failed"):
                raise StreamFailed(f"upstream error event: {_said(payload)}")
            if kind in _COUNTED_DELTAS:  # answer text and tool-call arguments, for estimates
                delta = payload.get("delta")
                if isinstance(delta, str) and delta:
                    self.text_chars += len(delta)
                    self.text_chunks += 1
                    self.committed = True
            elif kind in _TOKENS:
                self.committed = True
            if kind in _ENDS:
                self._done = True
                self.committed = True
                self.usage = _usage(payload.get("response"))
                status = (payload.get("response") or {}).get("status")
                if type(status) is str:
                    self.finish_reasons.append(status)
            name = e.event or kind
            line = e.data.replace("\n", " ")  # parsed: newlines lie between JSON tokens
            out.append(b"event: " + name.encode() + b"\ndata: " + line.encode() + b"\n\n")
        return b"".join(out)

    def end(self) -> bytes:
        if not self._done:
            raise StreamFailed("the upstream stream ended before it finished")
        return b""


_COUNTED_DELTAS = frozenset(
    {"response.output_text.delta", "response.function_call_arguments.delta"}
)
# Events that carry something a client can use besides answer text (the commit point).
_TOKENS = frozenset(
    {
        "response.refusal.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
    }
)


def _usage(response: Any) -> Usage | None:
    u = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(u, Mapping):
        return None
    try:
        return token_count(u.get("input_tokens")), token_count(u.get("output_tokens"))
    except ValueError as exc:
        raise StreamFailed(str(exc)) from exc


def _said(payload: Mapping[str, Any]) -> Any:
    """The message of an ``error`` or ``response.failed`` event (decoded, so that it can be
    redacted), or the event's type."""
    error = payload.get("error")
    if not isinstance(error, Mapping):
        response = payload.get("response")
        error = response.get("error") if isinstance(response, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message if message is not None else payload.get("type")


def native_answer(raw: bytes) -> Answer:
    """A Responses provider's complete answer, checked, with its usage."""
    body = loads_object(raw, "the answer")
    if body.get("object") != "response" or type(body.get("output")) is not list:
        raise InvalidAnswer("the answer is not a Responses object")
    return Answer(raw, usage_of(body, "input_tokens", "output_tokens"))
