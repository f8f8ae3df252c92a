"""Messages streams: the internal (OpenAI chunk) stream as Anthropic's event sequence, and an
Anthropic provider's own stream passed through once each event has been read.

``ChatEvents`` wraps a provider dialect's stream translator, whose output is always whole
``data:`` events, and writes ``message_start`` and a ``ping`` on the first chunk, a
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` run per text or
tool-use block, and, at ``[DONE]``, ``message_delta`` (stop reason and usage) and
``message_stop``. A tool call's arguments are held until its block ends and sent as one
``input_json_delta`` once they read as JSON: Anthropic clients parse the pieces as they come,
and an upstream's broken arguments must end the stream with an error event, as they fail a
plain answer, rather than crash the client's parser. ``NativeEvents`` checks an Anthropic
stream with ``translate.anthropic``'s reader (errors, usage, the end) and sends every event on
as it came.
"""

from __future__ import annotations

from typing import Any

import orjson

from signalbox_providers.dialects.base import StreamFailed, StreamTranslator, Usage
from signalbox_providers.ingress import messages
from signalbox_providers.ingress.anthropic_order import EventOrder
from signalbox_providers.ingress.over_chat import OverChat
from signalbox_providers.sse import SseParser
from signalbox_providers.translate.anthropic import AnthropicStream, event_payload
from signalbox_providers.translate.openai_format import (
    JSON,
    UpstreamStreamError,
    chunk_text_chars,
)


def event(name: str, payload: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ChatEvents(OverChat):
    """OpenAI chat chunks (from ``inner``) -> Anthropic Messages events."""

    def __init__(self, inner: StreamTranslator, model: str) -> None:
        super().__init__(inner)
        self._model = model
        self._started = False
        self._index = -1  # the last content block opened
        # The open blocks ("text", or "tool:<call index>") and their indexes. Tool calls stay
        # open until the end: an upstream may interleave the deltas of parallel calls.
        self._open: dict[str, int] = {}
        self._arguments: dict[str, list[str]] = {}  # an open tool call's pieces, held
        self._stop: Any = None
        self._usage: Any = None

    def _on_chunk(self, chunk: Any, out: list[bytes]) -> None:
        out += self._chunk(chunk)

    def _on_done(self, out: list[bytes]) -> None:
        out += self._finish()

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if "text" not in self._open:
                    out += self._close_all()
                    out += self._block("text", {"type": "text", "text": ""})
                out.append(self._delta("text", {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason") is not None:
                self._stop = choice["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self._started = True
        message: JSON = {
            "id": messages.message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": str(chunk.get("model") or self._model),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            event("message_start", {"type": "message_start", "message": message}),
            event("ping", {"type": "ping"}),
        ]

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        out: list[bytes] = []
        if key not in self._open:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out += self._close("text")
            out += self._block(key, block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._arguments.setdefault(key, []).append(arguments)
        return out

    def _input(self, key: str) -> list[bytes]:
        """The held arguments of the tool call ``key`` as one delta, once checked: arguments
        cut off with the answer (``finish_reason: length``) are no input, as in a plain answer."""
        arguments = "".join(self._arguments.pop(key, ()))
        if not arguments:
            return []
        try:
            orjson.loads(arguments)
        except orjson.JSONDecodeError:  # also past orjson's nesting limit
            if self._stop == "length":
                return []
            raise StreamFailed("the upstream's tool call arguments are not JSON") from None
        return [self._delta(key, {"type": "input_json_delta", "partial_json": arguments})]

    def _block(self, key: str, block: JSON) -> list[bytes]:
        self._index += 1
        self._open[key] = self._index
        payload = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [event("content_block_start", payload)]

    def _delta(self, key: str, delta: JSON) -> bytes:
        payload = {"type": "content_block_delta", "index": self._open[key], "delta": delta}
        return event("content_block_delta", payload)

    def _close(self, key: str) -> list[bytes]:
        if key not in self._open:
            return []
        out = self._input(key)
        index = self._open.pop(key)
        return [*out, event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _close_all(self) -> list[bytes]:
        return [
            e for key in sorted(self._open, key=self._open.__getitem__) for e in self._close(key)
        ]

    def _finish(self) -> list[bytes]:
        out = [] if self._started else self._start({})
        out += self._close_all()
        self._done = True
        u = messages.usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": messages.stop_reason(self._stop), "stop_sequence": None},
            "usage": u,
        }
        return [
            *out,
            event("message_delta", delta),
            event("message_stop", {"type": "message_stop"}),
        ]


class NativeEvents:
    """An Anthropic provider's stream, passed on event by event once each was read and checked
    (``anthropic_order``)."""

    def __init__(self, model: str) -> None:
        self._parser = SseParser()
        self._order = EventOrder()
        self._reader = AnthropicStream(model, True)
        self.text_chars = self.text_chunks = 0

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
