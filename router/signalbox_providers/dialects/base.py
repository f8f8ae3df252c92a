"""What every provider dialect shares: the errors, the values passed in and out, and helpers.

A dialect is everything type-specific about speaking to one kind of provider: the URL of each
call (with the model name escaped, so it can never change the path), the auth headers, the
request body, how an answer is validated and turned into OpenAI's shape, how a stream is
translated, how an error body reads, and the operator's probe calls. Sans-I/O: a dialect builds
bytes and reads bytes; the caller owns the HTTP client.

Errors a dialect raises:

* ``Unsupported``: this provider type cannot serve the request (the client gets a 400).
* ``InvalidAnswer``: the provider answered 2xx with something its own format does not allow
  (the attempt fails as ``InvalidResponse`` and may fail over).
* ``StreamFailed``: a stream broke after it started (the client gets an error event).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

import orjson

from signalbox_providers.translate.openai_format import (
    MAX_TOKENS,
    TranslationError,
    token_count,
)

Kind = Literal["chat", "embeddings"]
PROBE_PROMPT = "ping"
Usage = tuple[int, int]


class ClientApi(enum.StrEnum):
    """The APIs clients speak to the router. Every provider type is spoken to in OpenAI chat
    (translated where it speaks another); a dialect's ``speaks`` names the others its type
    serves itself, so a request in one of them passes through instead of being translated."""

    CHAT = "chat"
    MESSAGES = "messages"  # Anthropic's Messages API
    RESPONSES = "responses"  # OpenAI's Responses API
    COMPLETIONS = "completions"  # OpenAI's legacy text completions


class RequestParts(NamedTuple):  # a tuple: built on every attempt, and cheaply so
    """What a dialect builds one upstream request from: the request's ``kind`` and ``body`` (an
    OpenAI request), the upstream ``model`` and the provider's ``base_url`` and per-provider
    ``options``; ``raw``, the client's own bytes, sent as they are when nothing changes;
    ``max_output_tokens``, the model's declared limit, for APIs that require one."""

    kind: Kind
    base_url: str
    body: Mapping[str, Any]
    model: str
    options: Mapping[str, str]
    raw: bytes | None = None
    max_output_tokens: int | None = None


class Unsupported(TranslationError):
    """The provider type cannot serve this request as asked."""


class InvalidAnswer(ValueError):
    """A 2xx answer that does not follow the provider's own format."""


class StreamFailed(Exception):
    """An upstream stream broke after it started: cut, malformed, oversized or an error event."""


@dataclass(frozen=True)
class HttpCall:
    """A request to make. ``headers`` may hold a key: never log them."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"HttpCall({self.method} {self.url})"


class Outbound(NamedTuple):  # a tuple: built on every request, and cheaply so
    """One request body for a provider, and where it goes."""

    url: str
    data: bytes


class Answer(NamedTuple):
    """A validated complete answer, already in OpenAI's shape."""

    body: bytes
    usage: Usage | None


class StreamTranslator(Protocol):
    """Turns upstream stream bytes into the OpenAI SSE bytes a client receives."""

    @property
    def text_chars(self) -> int:
        """Characters of answer text streamed so far (for an estimate without usage)."""

    @property
    def text_chunks(self) -> int:
        """Chunks that carried answer text."""

    @property
    def usage(self) -> Usage | None:
        """Prompt and completion tokens, once the stream said."""

    def feed(self, data: bytes) -> bytes:
        """The client's bytes for ``data`` (often empty). Raises StreamFailed."""

    @property
    def done(self) -> bool:
        """Whether the stream is complete (the client got ``[DONE]``)."""

    @property
    def finish_reasons(self) -> list[str]:
        """Why each choice ended, as the stream said (empty until it did): for traces."""

    @property
    def committed(self) -> bool:
        """Whether the client's bytes so far carry a token: text, a tool call or a finish.
        Until then a failed stream is an ordinary failed attempt (the commit point)."""

    def end(self) -> bytes:
        """At upstream EOF: the closing bytes of a stream that finished without saying so.
        Raises StreamFailed when the stream was cut short."""


def root_of(base_url: str, versions: tuple[str, ...] = ("/v1",)) -> str:
    """The API's root under a base URL: ``https://host:port`` of ``https://host:port/v1``,
    ``https://gw/anthropic`` of ``https://gw/anthropic/v1``. Only a trailing API version
    (one of ``versions``) goes; a path prefix before it (a gateway's) stays."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    for version in versions:
        if path.endswith(version):
            path = path.removesuffix(version)
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def path_segment(value: str) -> str:
    """``value`` as one URL path segment: escaped, and never ``.`` or ``..``."""
    if value in ("", ".", "..") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise Unsupported(f"model name {value[:80]!r} cannot be used in a URL path")
    return quote(value, safe="")


def ids(key: str, item_key: str) -> Callable[[Any], list[str]]:
    def parse(body: Any) -> list[str]:
        items = body.get(key) if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise ValueError(f"expected a list under {key!r}")
        out = []
        for item in items:
            value = item.get(item_key) if isinstance(item, Mapping) else None
            if isinstance(value, str) and value:
                out.append(value)
        return out

    return parse


def usage_of(body: Mapping[str, Any], prompt: str, completion: str) -> Usage | None:
    """Token counts from a usage object; InvalidAnswer when they are not whole numbers."""
    usage = body.get("usage")
    if usage is None:
        return None
    if type(usage) is not dict:
        raise InvalidAnswer("usage is not an object")
    given, taken = usage.get(prompt), usage.get(completion)
    if (
        type(given) is int
        and type(taken) is int
        and 0 <= given <= MAX_TOKENS
        and 0 <= taken <= MAX_TOKENS
    ):
        return given, taken  # the usual answer, checked without a call
    try:
        return token_count(given), token_count(taken)
    except ValueError as exc:
        raise InvalidAnswer(str(exc)) from exc


def loads_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"{what} is not JSON") from exc
    if type(value) is not dict:
        raise InvalidAnswer(f"{what} is not a JSON object")
    return value


def encode(body: Mapping[str, Any]) -> bytes:
    """A request body as JSON; Unsupported when it cannot be written (nested too deep)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise Unsupported(f"the request cannot be encoded: {exc}") from exc


def translated(convert: Callable[[], Mapping[str, Any]], what: str) -> Answer:
    """An answer in another format, translated to OpenAI's by ``convert``; InvalidAnswer when it
    cannot be."""
    try:
        payload = convert()
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise InvalidAnswer(f"the {what} could not be read") from exc
    return Answer(orjson.dumps(payload), usage_of(payload, "prompt_tokens", "completion_tokens"))
