"""Responses streams: the internal (OpenAI chunk) stream as the Responses event sequence, and
an OpenAI provider's own Responses stream passed through once each event has been read.

``ChatResponseEvents`` writes ``response.created`` and ``response.in_progress`` on the first
chunk; per text item ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` ... ``response.output_text.done``, ``response.content_part.done``
and ``response.output_item.done``; per tool call ``response.output_item.added``,
``response.function_call_arguments.delta`` ... ``.done`` and ``response.output_item.done``;
and at ``[DONE]`` ``response.completed`` (``response.incomplete`` when the token limit cut it),
every event numbered by ``sequence_number``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from signalbox_providers.dialects.base import StreamFailed, StreamTranslator, Usage
from signalbox_providers.ingress import responses
from signalbox_providers.ingress.over_chat import OverChat
from signalbox_providers.ingress.responses_order import EventOrder
from signalbox_providers.sse import SseParser
from signalbox_providers.translate.openai_format import JSON, new_id, token_count

_ENDS = frozenset({"response.completed", "response.incomplete"})


class ChatResponseEvents(OverChat):
    """OpenAI chat chunks (from ``inner``) -> Responses stream events."""

    def __init__(self, inner: StreamTranslator, request: Mapping[str, Any], model: str) -> None:
        super().__init__(inner)
        self._request, self._model = request, model
        self._response: JSON | None = None
        self._seq = 0
        self._items: list[JSON] = []  # every output item added, at its output_index
        # The open items ("text", or "tool:<call index>") and their output indexes. Tool calls
        # stay open until the end: an upstream may interleave the deltas of parallel calls.
        self._open: dict[str, int] = {}
        self._finish: Any = None
        self._usage: Any = None

    def _on_chunk(self, chunk: Any, out: list[bytes]) -> None:
        self._chunk(chunk, out)

    def _on_done(self, out: list[bytes]) -> None:
        self._finish_all(out)

    def _event(self, out: list[bytes], kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    def _start(self, chunk: Mapping[str, Any], out: list[bytes]) -> JSON:
        rid = responses.response_id(chunk.get("id"))
        model = str(chunk.get("model") or self._model)
        response = self._response = responses.envelope(self._request, rid, model)
        self._event(out, "response.created", response=response)
        self._event(out, "response.in_progress", response=response)
        return response

    def _chunk(self, chunk: Mapping[str, Any], out: list[bytes]) -> None:
        if self._response is None:
            self._start(chunk, out)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text(text, out)
            for call in delta.get("tool_calls") or []:
                self._tool(call, out)
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]

    def _add(self, key: str, item: JSON, out: list[bytes]) -> int:
        at = self._open[key] = len(self._items)
        self._items.append(item)
        self._event(out, "response.output_item.added", output_index=at, item=_public(item))
        return at

    def _text(self, text: str, out: list[bytes]) -> None:
        at = self._open.get("text")
        if at is None:
            self._close_all(out)
            assert self._response is not None
            item = responses.message_item("", "msg_" + self._response["id"][5:], "in_progress")
            item["text"] = ""
            at = self._add("text", item, out)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._event(out, "response.content_part.added", **self._at(at), part=part)
        self._items[at]["text"] += text
        self._event(out, "response.output_text.delta", **self._at(at), delta=text, logprobs=[])

    def _tool(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        at = self._open.get(key)
        if at is None:
            self._close(out, "text")
            item = responses.call_item(
                str(call.get("id") or new_id("call_")),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            at = self._add(key, item, out)
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item = self._items[at]
            item["arguments"] += fragment
            self._event(
                out,
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=at,
                delta=fragment,
            )

    def _at(self, at: int) -> JSON:
        return {"item_id": self._items[at]["id"], "output_index": at, "content_index": 0}

    def _close(self, out: list[bytes], key: str) -> None:
        at = self._open.pop(key, None)
        if at is None:
            return
        item = self._items[at]
        if item["type"] == "message":
            text = item.pop("text")
            done = responses.message_item(text, item["id"])
            self._event(out, "response.output_text.done", **self._at(at), text=text, logprobs=[])
            self._event(out, "response.content_part.done", **self._at(at), part=done["content"][0])
        else:
            done = {**item, "status": "completed"}
            self._event(
                out,
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=at,
                name=item["name"],
                arguments=item["arguments"],
            )
        self._items[at] = done
        self._event(out, "response.output_item.done", output_index=at, item=done)

    def _close_all(self, out: list[bytes]) -> None:
        for key in sorted(self._open, key=self._open.__getitem__):
            self._close(out, key)

    def _finish_all(self, out: list[bytes]) -> None:
        response = self._response if self._response is not None else self._start({}, out)
        self._close_all(out)
        response["output"] = self._items
        self._done = True
        responses.finished(response, self._finish, self._usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._event(out, kind, response=response)


def _public(item: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in item.items() if k != "text"}


class NativeResponseEvents:
    """An OpenAI provider's own Responses stream, passed on event by event once each was read
    and checked (``responses_order``)."""

    def __init__(self) -> None:
        self._parser = SseParser()
        self._order = EventOrder()
        self.usage: Usage | None = None
        self.text_chars = self.text_chunks = 0
        self._done = False

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
            if kind in _ENDS:
                self._done = True
                self.usage = _usage(payload.get("response"))
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
