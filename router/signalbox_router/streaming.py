"""Relays one upstream stream to the client as OpenAI SSE chunks.

OpenAI-style streams pass through event by event (only a usage chunk the client did not ask
for is dropped); Anthropic and Ollama streams are translated. A stream cut or gone silent
upstream ends with an OpenAI-style error event and never with ``[DONE]``: once the first byte
reached the client, nothing is retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from signalbox_providers.sse import NdjsonParser, SseParser
from signalbox_providers.translate.anthropic import AnthropicStream
from signalbox_providers.translate.ollama import OllamaStream
from signalbox_providers.translate.openai_format import UpstreamStreamError
from signalbox_router import replies
from signalbox_router.deadlines import Deadlines
from signalbox_router.upstream import Wire


class StreamBroken(Exception):
    """The upstream stream ended badly after the client got its first bytes."""


@dataclass(frozen=True)
class Timing:
    """How long the stream may go quiet, and when the whole request must be over."""

    deadlines: Deadlines
    idle: float
    due: float


@dataclass
class StreamResult:
    ok: bool = False
    usage: tuple[int, int] | None = None
    error: str = ""


class _OpenAIRelay:
    """Passes OpenAI-style SSE through as bytes, looking only at the few events that matter:
    ``[DONE]``, usage chunks (kept for metering; dropped if the client did not ask for them)
    and error events. Splitting on blank lines is C-fast; CRLF streams go through the full
    SSE parser instead."""

    def __init__(self, client_usage: bool) -> None:
        self.client_usage = client_usage
        self.usage: tuple[int, int] | None = None
        self.done = False
        self._tail = b""
        self._parser: SseParser | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._parser is None and b"\r" in data:
            self._parser = SseParser()
            data, self._tail = self._tail + data, b""
        if self._parser is not None:
            events = [e.data.encode() for e in self._parser.feed(data)]
            return [piece for e in events if (piece := self._event(b"data: " + e))]
        *complete, self._tail = (self._tail + data).split(b"\n\n")
        return [piece for e in complete if e and (piece := self._event(e))]

    def _event(self, event: bytes) -> bytes:
        """The bytes to send the client for one event (empty to drop it)."""
        if event.startswith(b"data: [DONE]"):
            self.done = True
            return replies.DONE
        if b'"usage":{' in event:
            payload = json.loads(event.partition(b"data:")[2])
            usage = payload.get("usage") or {}
            self.usage = (
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
            )
            if not self.client_usage and not payload.get("choices"):
                return b""
        if event.startswith(b'data: {"error"'):
            raise UpstreamStreamError(event[6:506].decode(errors="replace"))
        return event + b"\n\n"


class _TranslatedRelay:
    def __init__(self, wire: Wire, model: str, client_usage: bool) -> None:
        self.stream: AnthropicStream | OllamaStream
        self.feed_parsed: Callable[[bytes], list[Any]]
        if wire == "anthropic":
            self.stream = AnthropicStream(model, client_usage)
            self.feed_parsed = SseParser().feed
        else:
            self.stream = OllamaStream(model, client_usage)
            self.feed_parsed = NdjsonParser().feed

    @property
    def usage(self) -> tuple[int, int] | None:
        u = self.stream.usage
        return (u.prompt, u.completion) if u is not None else None

    @property
    def done(self) -> bool:
        return self.stream.done

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        for item in self.feed_parsed(data):
            out += [replies.sse(chunk) for chunk in self.stream.feed(item)]
        if self.stream.done:
            out.append(replies.DONE)
        return out


async def relay(
    resp: aiohttp.ClientResponse,
    first: bytes,
    *,
    wire: Wire,
    model: str,
    client_usage: bool,
    timing: Timing,
    result: StreamResult,
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; fill ``result`` as the stream ends, well or badly."""
    translator: _OpenAIRelay | _TranslatedRelay = (
        _OpenAIRelay(client_usage)
        if wire == "openai"
        else _TranslatedRelay(wire, model, client_usage)
    )
    data = first
    try:
        while data:
            pieces = translator.feed(data)
            if pieces:
                yield b"".join(pieces)  # one write per upstream read, not per event
            if translator.done:
                break
            with timing.deadlines.at(min(time.monotonic() + timing.idle, timing.due)):
                data = await resp.content.readany()
        if not translator.done:
            raise StreamBroken("the upstream stream ended early")
        result.ok = True
    except (
        TimeoutError,
        aiohttp.ClientError,
        StreamBroken,
        UpstreamStreamError,
        ValueError,
    ) as exc:
        result.error = _describe(exc, timing)
        yield replies.sse(
            replies.error_body(
                502, f"upstream stream failed: {result.error}", code="upstream_stream_error"
            )
        )
    finally:
        result.usage = translator.usage
        resp.release()


def _describe(exc: BaseException, timing: Timing) -> str:
    if isinstance(exc, TimeoutError):
        if time.monotonic() >= timing.due:
            return "the request timeout passed"
        return "no data within the stream idle timeout"
    if isinstance(exc, StreamBroken | UpstreamStreamError):
        return str(exc)[:300]
    return type(exc).__name__
