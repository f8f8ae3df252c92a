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
        self._open: JSON | None = None  # the output item being streamed
        self._key: str | None = None  # "text" or "tool:<index>"
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

    def _index(self) -> int:
        assert self._response is not None
        return len(self._response["output"])

    def _text(self, text: str, out: list[bytes]) -> None:
        if self._key != "text":
            self._close(out)
            assert self._response is not None
            item = responses.message_item("", "msg_" + self._response["id"][5:], "in_progress")
            self._open, self._key = item, "text"
            item["text"] = ""
            self._event(
                out, "response.output_item.added", output_index=self._index(), item=_public(item)
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._event(out, "response.content_part.added", **self._at(item), part=part)
        assert self._open is not None
        self._open["text"] += text
        self._event(
            out, "response.output_text.delta", **self._at(self._open), delta=text, logprobs=[]
        )

    def _tool(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        if key != self._key:
            self._close(out)
            item = responses.call_item(
                str(call.get("id") or new_id("call_")),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            self._open, self._key = item, key
            self._event(out, "response.output_item.added", output_index=self._index(), item=item)
        assert self._open is not None
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            self._open["arguments"] += fragment
            self._event(
                out,
                "response.function_call_arguments.delta",
                item_id=self._open["id"],
                output_index=self._index(),
                delta=fragment,
            )

    def _at(self, item: Mapping[str, Any]) -> JSON:
        return {"item_id": item["id"], "output_index": self._index(), "content_index": 0}

    def _close(self, out: list[bytes]) -> None:
        item, self._open, self._key = self._open, None, None
        if item is None:
            return
        assert self._response is not None
        index = self._index()
        if item["type"] == "message":
            text = item.pop("text")
            done = responses.message_item(text, item["id"])
            self._event(out, "response.output_text.done", **self._at(item), text=text, logprobs=[])
            self._event(
                out, "response.content_part.done", **self._at(item), part=done["content"][0]
            )
        else:
            done = {**item, "status": "completed"}
            self._event(
                out,
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        self._event(out, "response.output_item.done", output_index=index, item=done)
        self._response["output"].append(done)

    def _finish_all(self, out: list[bytes]) -> None:
        response = self._response if self._response is not None else self._start({}, out)
        self._close(out)
        self._done = True
        responses.finished(response, self._finish, self._usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._event(out, kind, response=response)


def _public(item: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in item.items() if k != "text"}


class NativeResponseEvents:
    """An OpenAI provider's own Responses stream, passed on event by event once each was read."""

    def __init__(self) -> None:
        self._parser = SseParser()
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
            except orjson.JSONDecodeError as exc:
                raise StreamFailed("malformed upstream event: not JSON") from exc
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
