"""Ingress dialects: a provider's dialect wrapped for one request that came in through another
client API, so the router's attempt loop (failover, limits, metering) runs unchanged.

``for_messages`` translates the internal chat request through the provider's own dialect and
its answer and stream back into Anthropic Messages; an Anthropic provider instead gets the
client's request as sent (only the model name changes) and its answer and events go back as
they came, once read. ``for_completions`` sends a legacy completions request to the types that
serve ``/v1/completions`` and refuses the others as ``Unsupported``. ``for_responses`` passes
a Responses request through to OpenAI and Azure OpenAI providers and translates it to chat for
the others, which refuse one that needs stored state (``previous_response_id``).

Each wrapper factory takes the provider's dialect and type (OpenAI and OpenAI-compatible share
a dialect but not the Responses API).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalbox_api.provider import ProviderType
from signalbox_providers.dialects.anthropic import Anthropic
from signalbox_providers.dialects.azure import Azure
from signalbox_providers.dialects.base import (
    Answer,
    InvalidAnswer,
    Kind,
    Outbound,
    StreamTranslator,
    Unsupported,
    encode,
    loads_object,
    usage_of,
)
from signalbox_providers.dialects.ollama import Ollama
from signalbox_providers.dialects.openai import Dialect, checked_answer
from signalbox_providers.ingress import completions, messages, responses, responses_request
from signalbox_providers.ingress.messages_stream import ChatEvents, NativeEvents
from signalbox_providers.ingress.responses_stream import ChatResponseEvents, NativeResponseEvents
from signalbox_providers.outcomes import Outcome
from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.translate.openai_format import JSON

_NATIVE_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def chat_stream(inner: Dialect, model: str) -> StreamTranslator:
    """The provider's chat stream, read for a translation into another API's events: usage
    chunks are kept (those events carry usage), but a stream that finished without usage or
    ``[DONE]`` is still complete, its usage then estimated, as for a client that never asked."""
    stream = inner.stream(model, True)
    if isinstance(stream, OpenAIEvents):
        stream.usage_required = False
    return stream


@dataclass(frozen=True)
class MessagesIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)
    original: Mapping[str, Any] = field(default_factory=dict)  # the client's Messages request
    native: bool = False  # the provider speaks Messages itself

    def request(
        self,
        kind: Kind,
        base_url: str,
        body: Mapping[str, Any],
        model: str,
        *,
        raw: bytes | None = None,
        opts: Mapping[str, str],
        max_output_tokens: int | None = None,
    ) -> Outbound:
        if self.native:
            url = self.inner.url(base_url, kind, model, opts)
            return Outbound(url, encode({**self.original, "model": model}))
        return self.inner.request(
            kind, base_url, body, model, opts=opts, max_output_tokens=max_output_tokens
        )

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        if self.native:
            return _native_answer(raw)
        chat = self.inner.answer(kind, raw, model)
        try:
            message = messages.from_chat(orjson.loads(chat.body))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            raise InvalidAnswer("the answer could not be read as a chat completion") from exc
        return Answer(orjson.dumps(message), chat.usage)

    def classify(self, status: int, body: Any) -> Outcome:
        return self.inner.classify(status, body)

    def error(self, status: int, body: Any) -> JSON:
        if self.native and isinstance(body, dict) and body.get("type") == "error":
            return body  # Anthropic's own error, for an Anthropic client
        return self.inner.error(status, body)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        if self.native:
            return NativeEvents(model)
        return ChatEvents(chat_stream(self.inner, model), model)


def _native_answer(raw: bytes) -> Answer:
    body = loads_object(raw, "the answer")
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise InvalidAnswer("the answer is not an Anthropic message")
    usage = body.get("usage")
    if usage is None:
        return Answer(raw, None)
    if type(usage) is not dict:
        raise InvalidAnswer("usage is not an object")
    counts = [usage.get(k) or 0 for k in (*_NATIVE_USAGE, "output_tokens")]
    if any(type(c) is not int or c < 0 for c in counts):
        raise InvalidAnswer("usage token counts are not non-negative integers")
    return Answer(raw, (sum(counts[:-1]), counts[-1]))


@dataclass(frozen=True)
class CompletionsIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)

    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        if isinstance(self.inner, Anthropic | Azure):
            raise Unsupported("this provider type does not serve legacy text completions")
        if isinstance(self.inner, Ollama):
            return self.inner.root(base_url) + "/v1/completions"
        return base_url.rstrip("/") + "/completions"

    def request(
        self,
        kind: Kind,
        base_url: str,
        body: Mapping[str, Any],
        model: str,
        *,
        raw: bytes | None = None,
        opts: Mapping[str, str],
        max_output_tokens: int | None = None,
    ) -> Outbound:
        url = self.url(base_url, kind, model, opts)
        return Outbound(url, encode(completions.upstream_body(body, model)))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        return checked_answer(raw, "choices")  # a text completion has choices too

    def classify(self, status: int, body: Any) -> Outcome:
        return self.inner.classify(status, body)


@dataclass(frozen=True)
class ResponsesIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)
    original: Mapping[str, Any] = field(default_factory=dict)  # the client's Responses request
    native: bool = False  # the provider serves the Responses API itself

    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        if isinstance(self.inner, Azure):
            return self.inner.root(base_url) + "/openai/v1/responses"
        return base_url.rstrip("/") + "/responses"

    def request(
        self,
        kind: Kind,
        base_url: str,
        body: Mapping[str, Any],
        model: str,
        *,
        raw: bytes | None = None,
        opts: Mapping[str, str],
        max_output_tokens: int | None = None,
    ) -> Outbound:
        if self.native:
            url = self.url(base_url, kind, model, opts)
            return Outbound(url, encode({**self.original, "model": model}))
        if responses_request.stateful(self.original):
            raise Unsupported(
                "previous_response_id and conversation need stored responses, which only an "
                "OpenAI provider keeps; this request's provider is stateless"
            )
        return self.inner.request(
            kind, base_url, body, model, opts=opts, max_output_tokens=max_output_tokens
        )

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        if self.native:
            body = loads_object(raw, "the answer")
            if body.get("object") != "response" or type(body.get("output")) is not list:
                raise InvalidAnswer("the answer is not a Responses object")
            return Answer(raw, usage_of(body, "input_tokens", "output_tokens"))
        chat = self.inner.answer(kind, raw, model)
        try:
            out = responses.from_chat(orjson.loads(chat.body), self.original)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            raise InvalidAnswer("the answer could not be read as a chat completion") from exc
        return Answer(orjson.dumps(out), chat.usage)

    def classify(self, status: int, body: Any) -> Outcome:
        return self.inner.classify(status, body)

    def error(self, status: int, body: Any) -> JSON:
        return self.inner.error(status, body)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        if self.native:
            return NativeResponseEvents()
        return ChatResponseEvents(chat_stream(self.inner, model), self.original, model)


_RESPONSES_NATIVE = frozenset({ProviderType.OPENAI, ProviderType.AZURE_OPENAI})
Wrap = Callable[[Dialect, ProviderType], Dialect]


def for_responses(original: Mapping[str, Any]) -> Wrap:
    """The wrapper for one Responses request (``original``: the client's body)."""

    def wrap(inner: Dialect, ptype: ProviderType) -> Dialect:
        native = ptype in _RESPONSES_NATIVE
        return ResponsesIngress(inner=inner, original=original, native=native)

    return wrap


def for_messages(original: Mapping[str, Any]) -> Wrap:
    """The wrapper for one Messages request (``original``: the client's body)."""

    def wrap(inner: Dialect, ptype: ProviderType) -> Dialect:
        return MessagesIngress(inner=inner, original=original, native=isinstance(inner, Anthropic))

    return wrap


def for_completions(inner: Dialect, ptype: ProviderType) -> Dialect:
    return CompletionsIngress(inner=inner)
