"""A streamed answer, collected as it goes to the client, to keep it as one ``chat.completion``.

The response cache keeps answers in the plain (not streamed) shape and replays them as a stream
when asked to; this turns the OpenAI stream the router sends into that shape: per choice, the
content and tool-call pieces joined, the finish reason, and the usage when the stream had it.
A stream that ends without ``[DONE]``, carries an error event, cannot be parsed or grows past
``limit`` bytes gives nothing, so only a whole, clean answer can be kept. No I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

_BASE = ("id", "created", "model", "system_fingerprint")


class Capture:
    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.buffer = b""
        self.base: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.done = self.broken = False

    def feed(self, data: bytes) -> None:
        """Take the next bytes sent to the client (any split of the stream)."""
        if self.broken:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._break()
            return
        self.buffer += data
        *events, self.buffer = self.buffer.split(b"\n\n")
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and not self.broken:
                    self._data(line[5:].strip())

    def _break(self) -> None:
        self.broken, self.buffer, self.choices = True, b"", {}

    def _data(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict) or "error" in chunk:
            self._break()
            return
        if self.base is None:
            self.base = {k: chunk[k] for k in _BASE if k in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        slot = self.choices.setdefault(index, {"content": [], "calls": {}, "finish": None})
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str):
            slot["content"].append(delta["content"])
        for call in delta.get("tool_calls") or ():
            got = slot["calls"].setdefault(
                call.get("index", 0), {"id": "", "type": "function", "function": {}}
            )
            got["id"] = call.get("id") or got["id"]
            for key, piece in (call.get("function") or {}).items():
                if isinstance(piece, str):
                    got["function"][key] = got["function"].get(key, "") + piece
        if choice.get("finish_reason"):
            slot["finish"] = choice["finish_reason"]

    def answer(self) -> bytes | None:
        """The whole answer as a ``chat.completion``, or None if it may not be kept."""
        if self.broken or not self.done or not self.choices or self.base is None:
            return None
        choices = []
        for index, slot in sorted(self.choices.items()):
            calls = [call for _, call in sorted(slot["calls"].items())]
            text = "".join(slot["content"])
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            choices.append({"index": index, "message": message, "finish_reason": slot["finish"]})
        body: dict[str, Any] = {**self.base, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            body["usage"] = self.usage
        return orjson.dumps(body)
