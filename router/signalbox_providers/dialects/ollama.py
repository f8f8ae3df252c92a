"""Ollama: chat through its native ``/api/chat`` (translated, NDJSON streams), embeddings
through its OpenAI-compatible ``/v1/embeddings``, the model list from ``/api/tags``, and each
model's capabilities and context length from ``/api/show``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalbox_api.provider import ProviderType
from signalbox_providers import model_facts, streams
from signalbox_providers.dialects.base import (
    PROBE_PROMPT,
    Answer,
    ClientApi,
    HttpCall,
    InvalidAnswer,
    Kind,
    Outbound,
    RequestParts,
    StreamTranslator,
    Unsupported,
    encode,
    ids,
    loads_object,
    translated,
)
from signalbox_providers.dialects.openai import Dialect
from signalbox_providers.translate import chat_to_ollama as tx
from signalbox_providers.translate.openai_format import JSON


@dataclass(frozen=True)
class Ollama(Dialect):
    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        return self.root(base_url) + ("/api/chat" if kind == "chat" else "/v1/embeddings")

    def native_url(self, api: ClientApi, base_url: str, model: str, opts: Mapping[str, str]) -> str:
        """Legacy completions go to Ollama's OpenAI-compatible ``/v1``."""
        if api not in self.speaks:
            raise Unsupported(f"Ollama providers do not serve the {api.value} API")
        return self.root(base_url) + "/v1/" + api.value

    def request(self, parts: RequestParts) -> Outbound:
        if parts.kind != "chat":
            return super().request(parts)
        url = self.url(parts.base_url, parts.kind, parts.model, parts.options)
        return Outbound(url, encode(tx.to_ollama(parts.body, parts.model)))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        if kind != "chat":
            return super().answer(kind, raw, model)
        body = loads_object(raw, "the answer")
        if not isinstance(body.get("message"), Mapping):
            raise InvalidAnswer("the answer has no 'message' object")
        return translated(lambda: tx.from_ollama(body, model), "Ollama answer")

    def error(self, status: int, body: Any) -> JSON:
        return tx.error_to_openai(status, body)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        return streams.ollama_lines(model, client_usage)

    def listed_facts(self, listing: Any) -> dict[str, model_facts.ModelFacts]:
        return {}  # /api/tags says nothing of capabilities: /api/show does

    def show_model(
        self, base_url: str, model: str, api_key: str | None, header: str | None = None
    ) -> HttpCall | None:
        return HttpCall(
            "POST",
            self.root(base_url) + "/api/show",
            self.headers(api_key, header),
            {"model": model},
        )

    def parse_shown(self, body: Any) -> model_facts.ModelFacts:
        return model_facts.from_ollama_show(body)

    def chat_body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "stream": False,
            "options": {"num_predict": 1},
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        }


DIALECTS = {
    ProviderType.OLLAMA: Ollama(
        models_path="/api/tags",
        models_from_root=True,
        parse_models=ids("models", "name"),
        speaks=frozenset({ClientApi.COMPLETIONS}),
    )
}
