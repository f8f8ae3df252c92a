"""A client stream in another API's events, made from the chat chunks an inner translator sends.

The inner translator (the provider's dialect) reads and validates the upstream stream and hands
out OpenAI chat chunks; a subclass turns each chunk, and the end of the chat stream, into its
API's events. Usage, the text counts for an estimate and the upstream's end come from the inner
translator, so metering sees what it sees for chat.
"""

from __future__ import annotations

from typing import Any

import orjson

from signalbox_providers.dialects.base import StreamFailed, StreamTranslator, Usage


class OverChat:
    def __init__(self, inner: StreamTranslator) -> None:
        self._inner = inner
        self._done = False

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @property
    def text_chars(self) -> int:
        return self._inner.text_chars

    @property
    def text_chunks(self) -> int:
        return self._inner.text_chunks

    @property
    def done(self) -> bool:
        return self._done

    @property
    def committed(self) -> bool:
        return self._inner.committed

    @property
    def finish_reasons(self) -> list[str]:
        return self._inner.finish_reasons

    def feed(self, data: bytes) -> bytes:
        return self._translate(self._inner.feed(data))

    def end(self) -> bytes:
        return self._translate(self._inner.end())

    def _translate(self, chat: bytes) -> bytes:
        out: list[bytes] = []
        for raw in chat.split(b"\n\n"):
            if not raw.startswith(b"data: ") or self._done:
                continue
            try:
                if raw == b"data: [DONE]":
                    self._on_done(out)
                else:
                    self._on_chunk(orjson.loads(raw[6:]), out)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise StreamFailed(f"an upstream chunk could not be read: {exc}") from exc
        return b"".join(out)

    def _on_chunk(self, chunk: Any, out: list[bytes]) -> None:
        """Append the events one chat chunk stands for."""
        raise NotImplementedError

    def _on_done(self, out: list[bytes]) -> None:
        """Append the events that close the stream (the chat stream sent ``[DONE]``)."""
        raise NotImplementedError
