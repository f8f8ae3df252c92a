"""Ingress: a provider's dialect wrapped for one request that came in through another client API
(Anthropic Messages, OpenAI Responses, legacy completions), so the router's attempt loop
(failover, limits, metering) runs unchanged, as for an OpenAI chat request.

Whether the provider serves the client's API itself is data on its dialect (``speaks``), never
a question of its type. When it does, the client's request goes as sent (only the model name
changes) and the answer and stream go back as they came, once read and checked (the
``*_to_anthropic`` / ``*_to_openai`` pair modules in ``translate``). When it does not, the
internal chat request goes through the provider's own dialect and the answer and stream are
translated back (the ``*_to_chat`` pair modules); a Responses request that needs stored state
(``previous_response_id``) and a completions request are then refused as ``Unsupported``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalbox_providers.dialects.base import (
    Answer,
    ClientApi,
    InvalidAnswer,
    Kind,
    Outbound,
    RequestParts,
    StreamTranslator,
    Unsupported,
    encode,
)
from signalbox_providers.dialects.openai import Dialect, checked_answer
from signalbox_providers.outcomes import Outcome
from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.translate import (
    completions_to_openai,
    messages_to_anthropic,
    messages_to_chat,
    responses_to_chat,
    responses_to_openai,
)
from signalbox_providers.translate.openai_format import JSON

Wrap = Callable[[Dialect], Dialect]
_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def chat_stream(inner: Dialect, model: str) -> StreamTranslator:
    """The provider's chat stream, read for a translation into another API's events: usage
    chunks are kept (those events carry usage), but a stream that finished without usage or
    ``[DONE]`` is still complete, its usage then estimated, as for a client that never asked."""
    stream = inner.stream(model, True)
    if isinstance(stream, OpenAIEvents):
        stream.usage_required = False
    return stream


def _passed_through(
    inner: Dialect, api: ClientApi, parts: RequestParts, original: JSON
) -> Outbound:
    url = inner.native_url(api, parts.base_url, parts.model, parts.options)
    return Outbound(url, encode({**original, "model": parts.model}))


@dataclass(frozen=True)
class MessagesIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)
    original: Mapping[str, Any] = field(default_factory=dict)  # the client's Messages request

    @property
    def native(self) -> bool:
        return ClientApi.MESSAGES in self.inner.speaks

    def request(self, parts: RequestParts) -> Outbound:
        if self.native:
            return _passed_through(self.inner, ClientApi.MESSAGES, parts, dict(self.original))
        return self.inner.request(parts._replace(raw=None))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        if self.native:
            return messages_to_anthropic.native_answer(raw)
        chat = self.inner.answer(kind, raw, model)
        try:
            message = messages_to_chat.from_chat(orjson.loads(chat.body))
        except _UNREADABLE as exc:
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
            return messages_to_anthropic.NativeEvents(model)
        return messages_to_chat.ChatEvents(chat_stream(self.inner, model), model)


@dataclass(frozen=True)
class CompletionsIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)

    def request(self, parts: RequestParts) -> Outbound:
        url = self.inner.native_url(ClientApi.COMPLETIONS, parts.base_url, parts.model, {})
        body = completions_to_openai.upstream_body(parts.body, parts.model)
        return Outbound(url, encode(body))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        return checked_answer(raw, "choices")  # a text completion has choices too

    def classify(self, status: int, body: Any) -> Outcome:
        return self.inner.classify(status, body)


@dataclass(frozen=True)
class ResponsesIngress(Dialect):
    inner: Dialect = field(default_factory=Dialect)
    original: Mapping[str, Any] = field(default_factory=dict)  # the client's Responses request

    @property
    def native(self) -> bool:
        return ClientApi.RESPONSES in self.inner.speaks

    def request(self, parts: RequestParts) -> Outbound:
        if self.native:
            return _passed_through(self.inner, ClientApi.RESPONSES, parts, dict(self.original))
        if responses_to_chat.stateful(self.original):
            raise Unsupported(
                "previous_response_id and conversation need stored responses, which only an "
                "OpenAI provider keeps; this request's provider is stateless"
            )
        return self.inner.request(parts._replace(raw=None))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        if self.native:
            return responses_to_openai.native_answer(raw)
        chat = self.inner.answer(kind, raw, model)
        try:
            out = responses_to_chat.from_chat(orjson.loads(chat.body), self.original)
        except _UNREADABLE as exc:
            raise InvalidAnswer("the answer could not be read as a chat completion") from exc
        return Answer(orjson.dumps(out), chat.usage)

    def classify(self, status: int, body: Any) -> Outcome:
        return self.inner.classify(status, body)

    def error(self, status: int, body: Any) -> JSON:
        return self.inner.error(status, body)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        if self.native:
            return responses_to_openai.NativeResponseEvents()
        return responses_to_chat.ChatResponseEvents(
            chat_stream(self.inner, model), self.original, model
        )


def for_responses(original: Mapping[str, Any]) -> Wrap:
    """The wrapper for one Responses request (``original``: the client's body)."""
    return lambda inner: ResponsesIngress(inner=inner, original=original)


def for_messages(original: Mapping[str, Any]) -> Wrap:
    """The wrapper for one Messages request (``original``: the client's body)."""
    return lambda inner: MessagesIngress(inner=inner, original=original)


def for_completions(inner: Dialect) -> Dialect:
    return CompletionsIngress(inner=inner)
