"""The shape of a stream's plain text chunks, to read the next ones by their text alone.

Past its first event, nearly every event of an OpenAI-style stream is the same bytes but for
the piece of text it carries::

    {"id":"chatcmpl-1","object":"chat.completion.chunk",…,"choices":[{"index":0,"delta":
    {"content":"Hello"},"logprobs":null,"finish_reason":null}]}

An event read in full and found to be such a chunk (one choice, index 0, unfinished, a delta of
content and perhaps a role, no usage) is kept as a :class:`TextChunkShape`: the bytes before its
text and the bytes after it. A later event that starts and ends with the same bytes and holds
exactly one JSON string between them is the same chunk with other text, valid for the same
reasons, and only that string needs reading. Anything else is read in full.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

_CONTENT = b'"content":'
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string's extent (orjson checks the rest)
_DELTA_KEYS = frozenset({"content", "role"})


class TextChunkShape(NamedTuple):
    head: bytes  # the event's bytes before its text
    tail: bytes  # and after it

    @classmethod
    def of(cls, payload: bytes, chunk: dict[str, Any]) -> TextChunkShape | None:
        """The shape of ``payload``, which parsed (and was found valid) as ``chunk``, when it
        is a plain text chunk; None otherwise."""
        choices = chunk.get("choices")
        if chunk.get("usage") is not None or type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        delta = choice.get("delta")
        if (
            choice.get("index", 0) != 0
            or choice.get("finish_reason") is not None
            or "text" in choice
            or type(delta) is not dict
            or type(delta.get("content")) is not str
            or not _DELTA_KEYS.issuperset(delta)
            or b"\n" in payload
            or payload.count(_CONTENT) != 1  # in valid JSON these bytes are only ever a key
        ):
            return None
        start = payload.index(_CONTENT) + len(_CONTENT)
        while payload[start : start + 1] == b" ":
            start += 1
        text = _STRING.match(payload, start)
        if text is None:
            return None
        return cls(payload[:start], payload[text.end() :])

    def text(self, payload: bytes) -> str | None:
        """The text ``payload`` carries when it has this shape; None when it has not."""
        head, tail = self.head, self.tail
        if (
            len(payload) <= len(head) + len(tail)
            or not payload.startswith(head)
            or not payload.endswith(tail)
        ):
            return None
        middle = payload[len(head) : len(payload) - len(tail)]
        if b"\n" in middle:
            return None
        try:
            text = orjson.loads(middle)
        except orjson.JSONDecodeError:
            return None
        return text if type(text) is str else None
