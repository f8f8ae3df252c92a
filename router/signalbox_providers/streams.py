"""Stream translators: upstream stream bytes in, the OpenAI SSE bytes a client receives out.

Every event is parsed before it reaches the client, so a client only ever sees well-formed chunks: a
malformed, oversized or error event raises ``StreamFailed`` and the caller fails over (before the
commit point) or ends the stream with an error event (after it). ``committed`` says whether the
client's bytes so far hold a token (text, a tool call or a finish): until then the caller holds
them, and a stream that fails is an ordinary failed attempt. A stream that delivered its
``finish_reason`` (and the usage the client asked for) but closed without ``[DONE]`` is completed
here; one cut before that is a failure. Reassembly is linear in the size of an event, and an event
is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from signalbox_providers.dialects.base import InvalidAnswer, StreamFailed, Usage, usage_of
from signalbox_providers.sse import MAX_EVENT, NdjsonParser, SseParser
from signalbox_providers.text_chunk_shape import TextChunkShape
from signalbox_providers.tool_call_heads import ToolCallHeads
from signalbox_providers.translate.chat_to_anthropic import AnthropicStream
from signalbox_providers.translate.chat_to_ollama import OllamaStream
from signalbox_providers.translate.openai_format import (
    UpstreamStreamError,
    carries_token,
    chunk_text_chars,
    delta_text_chars,
    note_finishes,
)

DONE = b"data: [DONE]\n\n"


def sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class OpenAIEvents:
    """OpenAI-style SSE, passed through event by event once each event has been read.

    Only a usage chunk the client did not ask for is dropped (the router asks for usage to
    meter streams), and a tool call's id, type and name repeated after its first delta
    (``tool_call_heads``). Blank-line framing is split with ``bytes.split``; streams with CR
    line ends go through the full SSE parser instead.
    """

    def __init__(self, client_usage: bool, max_event: int = MAX_EVENT) -> None:
        self.client_usage = client_usage
        # Whether a stream that finished without [DONE] needs its usage chunk to count as
        # complete: when the client asked for usage, a stream cut after its finish_reason has
        # lost it. A translator into another API's events sets it off (it estimates usage).
        self.usage_required = client_usage
        self.usage: Usage | None = None
        self.text_chars = self.text_chunks = 0
        self._max = max_event
        self._done = False
        self._closed: set[int] = set()  # the indexes of the choices that finished
        self.finish_reasons: list[str] = []
        self._next_index = 0  # choice indexes come in order: a new one is the next
        self.committed = False
        self._pending: list[bytes] = []  # an event not yet complete, in pieces
        self._pending_size = 0
        self._parser: SseParser | None = None
        self._heads = ToolCallHeads()
        self._shape: TextChunkShape | None = None  # of the last plain text chunk read in full

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> bytes:
        if self._done:
            return b""
        if (  # the usual read: exactly one whole one-line data event (what _split would find)
            not self._pending
            and self._parser is None
            and data.startswith(b"data: ")
            and data.find(b"\n") == len(data) - 2
            and data.endswith(b"\n\n")
            and b"\r" not in data
            and len(data) - 2 <= self._max
        ):
            try:
                return self._payload(data[6:-2])
            except ValueError as exc:
                raise StreamFailed(str(exc)) from exc
        if self._parser is None and b"\r" in data:
            self._parser = SseParser(self._max)
            data, self._pending, self._pending_size = b"".join(self._pending) + data, [], 0
        try:
            if self._parser is not None:
                events = [e.data.encode() for e in self._parser.feed(data)]
                return b"".join(self._payload(e) for e in events if not self._done)
            return b"".join(self._event(e) for e in self._split(data) if e and not self._done)
        except ValueError as exc:  # parse errors, oversized events, bad usage
            raise StreamFailed(str(exc)) from exc

    def end(self) -> bytes:
        if self._done:
            return b""
        rest = b"".join(self._pending).strip()
        self._pending = []
        out = self.feed(rest + b"\n\n") if rest and self._parser is None else b""
        if self._done:
            return out
        if self._closed and (self.usage is not None or not self.usage_required):
            self._done = True
            return out + DONE
        raise StreamFailed("the upstream stream ended before it finished")

    def _split(self, data: bytes) -> list[bytes]:
        """Complete events (without their blank line); holds the rest. Linear: the pieces of
        an event are joined once, when its end arrives."""
        if self._pending:
            boundary = b"\n\n" in data or (
                data.startswith(b"\n") and self._pending[-1].endswith(b"\n")
            )
            if not boundary:
                self._hold(data)
                return []
            data, self._pending, self._pending_size = b"".join(self._pending) + data, [], 0
        *complete, tail = data.split(b"\n\n")
        if tail:
            self._hold(tail)
        if any(len(e) > self._max for e in complete):
            raise StreamFailed(f"an upstream stream event exceeds {self._max} bytes")
        return complete

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self._max:
            raise StreamFailed(f"an upstream stream event exceeds {self._max} bytes")

    def _event(self, event: bytes) -> bytes:
        if event.startswith(b"data: ") and b"\n" not in event:
            return self._payload(event[6:])
        lines = [line for line in event.split(b"\n") if line and not line.startswith(b":")]
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        return self._payload(b"\n".join(data)) if data else b""

    def _payload(self, payload: bytes) -> bytes:
        shape = self._shape
        if shape is not None:  # most events: another piece of text (see text_chunk_shape)
            text = shape.text(payload)
            if text is not None:
                if text:
                    self.committed = True
                    self.text_chars += len(text)
                    self.text_chunks += 1
                return b"data: " + payload + b"\n\n"
        if payload == b"[DONE]":
            self._done = True
            return DONE
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise StreamFailed("malformed upstream event: not JSON") from exc
        if not isinstance(chunk, dict):
            raise StreamFailed("an upstream event is not a JSON object")
        if "error" in chunk:
            raise StreamFailed(_error_message(chunk["error"]))
        choices = chunk.get("choices")
        if type(choices) is not list:
            raise StreamFailed("an upstream event has no 'choices' list")
        for choice in choices:
            _check_choice(choice)
            self._follow(choice)
            self._count(choice)
        if self._heads.trim(choices):  # see tool_call_heads: rare, so re-encoded only then
            payload = orjson.dumps(chunk)
        elif b"\n" in payload:  # its data came in several lines: valid JSON, so the newlines
            payload = payload.replace(b"\n", b" ")  # lie between tokens; one line for the client
        if chunk.get("usage") is not None:
            try:
                self.usage = usage_of(chunk, "prompt_tokens", "completion_tokens")
            except InvalidAnswer as exc:
                raise StreamFailed(str(exc)) from exc
            if not self.client_usage and not choices:
                return b""
        self._shape = None if self._closed else TextChunkShape.of(payload, chunk)
        return b"data: " + payload + b"\n\n"

    def _follow(self, choice: dict[str, Any]) -> None:
        """StreamFailed for a choice out of its place: an index never announced in order, or
        anything for a choice that already finished."""
        index = choice.get("index", 0)
        if index in self._closed:
            if carries_token(choice):
                raise StreamFailed(f"an upstream event continues choice {index} after it finished")
            return
        if index > self._next_index or index < 0:
            raise StreamFailed(f"an upstream event has a stray choice index ({index})")
        if index == self._next_index:
            self._next_index += 1
        if choice.get("finish_reason") is not None:
            self._closed.add(index)
            self.finish_reasons.append(choice["finish_reason"])
            self.committed = True
        elif not self.committed and carries_token(choice):
            self.committed = True

    def _count(self, choice: dict[str, Any]) -> None:
        text = choice.get("text")  # a text completion's piece (``/v1/completions``)
        chars = delta_text_chars(choice.get("delta")) + (len(text) if type(text) is str else 0)
        if chars:
            self.text_chars += chars
            self.text_chunks += 1


def _check_choice(choice: Any) -> None:
    """StreamFailed unless ``choice`` has the shape of a chunk's choice, as far as anything
    here or a client reads it: an object with an integer index, and a delta (when there is
    one) whose tool calls are objects with integer indexes."""
    if type(choice) is not dict or type(choice.get("index", 0)) is not int:
        raise StreamFailed("an upstream event has a choice that is not an object with an index")
    if type(choice.get("finish_reason", "")) not in _TEXT_OR_NULL:
        raise StreamFailed("an upstream event has a finish_reason that is not text")
    if type(choice.get("text", "")) not in _TEXT_OR_NULL:
        raise StreamFailed("an upstream event has a text that is not text")
    delta = choice.get("delta")
    if delta is None:
        return
    if type(delta) is not dict:
        raise StreamFailed("an upstream event has a delta that is not an object")
    for key in _DELTA_TEXTS:
        if type(delta.get(key)) not in _TEXT_OR_NULL:
            raise StreamFailed(f"an upstream event has a delta whose {key} is not text")
    calls = delta.get("tool_calls")
    if calls is not None and (
        type(calls) is not list
        or any(
            type(c) is not dict
            or type(c.get("index", 0)) is not int
            or not isinstance(c.get("function") or {}, dict)
            for c in calls
        )
    ):
        raise StreamFailed("an upstream event has malformed tool calls")
    if not isinstance(delta.get("function_call") or {}, dict):
        raise StreamFailed("an upstream event has a malformed function call")


_TEXT_OR_NULL = (str, type(None))
_DELTA_TEXTS = ("role", "content", "refusal", "reasoning_content", "reasoning")


def _error_message(error: Any) -> str:
    """The upstream's own words, whole: whoever shows them redacts secrets, then shortens."""
    message = error.get("message") if isinstance(error, Mapping) else error
    return f"upstream error event: {message}"


class TranslatedEvents:
    """A stream in another provider's format (Anthropic SSE, Ollama NDJSON), translated."""

    def __init__(
        self,
        parse: Callable[[bytes], list[Any]],
        translator: AnthropicStream | OllamaStream,
        flush: Callable[[], list[Any]] | None = None,
    ) -> None:
        self._parse, self._translator, self._flush = parse, translator, flush
        self._sent_done = False
        self.text_chars = self.text_chunks = 0
        self.committed = False
        self.finish_reasons: list[str] = []

    @property
    def usage(self) -> Usage | None:
        u = self._translator.usage
        return (u.prompt, u.completion) if u is not None else None

    @property
    def done(self) -> bool:
        return self._sent_done

    def feed(self, data: bytes) -> bytes:
        return self._translate(lambda: self._parse(data))

    def end(self) -> bytes:
        flush = self._flush
        out = self._translate(flush) if flush is not None and not self._sent_done else b""
        if not self._sent_done:
            raise StreamFailed("the upstream stream ended before it finished")
        return out

    def _translate(self, parsed: Callable[[], list[Any]]) -> bytes:
        """Translate what ``parsed`` yields; a parse or translation error fails the stream."""
        out = []
        try:
            for item in parsed():
                for chunk in self._translator.feed(item):
                    out.append(sse(chunk))
                    self._count(chunk)
        except (UpstreamStreamError, ValueError, TypeError, RecursionError) as exc:
            raise StreamFailed(f"upstream stream error: {exc}") from exc
        if self._translator.done and not self._sent_done:
            self._sent_done = True
            out.append(DONE)
        return b"".join(out)

    def _count(self, chunk: Mapping[str, Any]) -> None:
        chars = chunk_text_chars(chunk)
        if chars:
            self.text_chars += chars
            self.text_chunks += 1
        if not self.committed:
            self.committed = any(carries_token(c) for c in chunk.get("choices") or ())
        note_finishes(chunk, self.finish_reasons)


def anthropic_events(model: str, client_usage: bool) -> TranslatedEvents:
    return TranslatedEvents(SseParser().feed, AnthropicStream(model, client_usage))


def ollama_lines(model: str, client_usage: bool) -> TranslatedEvents:
    parser = NdjsonParser()
    return TranslatedEvents(parser.feed, OllamaStream(model, client_usage), parser.flush)
