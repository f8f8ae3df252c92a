"""Anthropic's Messages API: OpenAI chat is translated to Messages and back, streams included.

Anthropic serves no embeddings. Keys go in ``x-api-key`` with a fixed ``anthropic-version``;
every call is at the server root (``/v1/messages``, ``/v1/models``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalbox_api.provider import ProviderType
from signalbox_providers import streams
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
    loads_object,
    translated,
)
from signalbox_providers.dialects.openai import Dialect
from signalbox_providers.translate import chat_to_anthropic as tx
from signalbox_providers.translate.openai_format import JSON

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; used when neither side sets one


@dataclass(frozen=True)
class Anthropic(Dialect):
    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        if kind != "chat":
            raise Unsupported("Anthropic providers do not serve embeddings")
        return self.root(base_url) + "/v1/messages"

    def native_url(self, api: ClientApi, base_url: str, model: str, opts: Mapping[str, str]) -> str:
        if api not in self.speaks:
            raise Unsupported(f"Anthropic providers do not serve the {api.value} API")
        return self.url(base_url, "chat", model, opts)

    def request(self, parts: RequestParts) -> Outbound:
        url = self.url(parts.base_url, parts.kind, parts.model, parts.options)
        default = parts.max_output_tokens or DEFAULT_MAX_TOKENS
        return Outbound(url, encode(tx.to_anthropic(parts.body, parts.model, default)))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        body = loads_object(raw, "the answer")
        if body.get("type") != "message" or not isinstance(body.get("content"), list):
            raise InvalidAnswer("the answer is not an Anthropic message")
        usage = body.get("usage")
        if usage is not None and not isinstance(usage, Mapping):
            raise InvalidAnswer("usage is not an object")
        return translated(lambda: tx.from_anthropic(body, model), "Anthropic message")

    def error(self, status: int, body: Any) -> JSON:
        return tx.error_to_openai(status, body)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        return streams.anthropic_events(model, client_usage)


DIALECTS = {
    ProviderType.ANTHROPIC: Anthropic(
        auth_header="x-api-key",
        bearer=False,
        fixed_headers={"anthropic-version": ANTHROPIC_VERSION},
        models_path="/v1/models",
        models_from_root=True,
        speaks=frozenset({ClientApi.MESSAGES}),
    )
}
