"""How to talk to each provider type: auth headers, the model-list and chat-probe calls, and how
to read a model list. Sans-I/O: this builds requests and parses bodies; callers do the HTTP.

A table of small dialect objects keyed by provider type, not an if/elif over names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from signalbox_api.provider import ProviderType

ANTHROPIC_VERSION = "2023-06-01"
PROBE_PROMPT = "ping"


@dataclass(frozen=True)
class HttpCall:
    """A request to make. ``headers`` may hold a key: never log them."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None


def root_of(base_url: str) -> str:
    """``https://host:port`` of a base URL such as ``https://host:port/v1``."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _ids(key: str, item_key: str) -> Callable[[Any], list[str]]:
    def parse(body: Any) -> list[str]:
        items = body.get(key) if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise ValueError(f"expected a list under {key!r}")
        ids = (i.get(item_key) for i in items if isinstance(i, Mapping))
        return [i for i in ids if isinstance(i, str) and i]  # {"id": null} names no model

    return parse


_OPENAI_IDS = _ids("data", "id")


@dataclass(frozen=True)
class Dialect:
    """One provider type's conventions."""

    auth_header: str = "Authorization"
    bearer: bool = True
    fixed_headers: Mapping[str, str] = field(default_factory=dict)
    models_path: str = "/models"  # appended to the base URL
    models_from_root: bool = False
    parse_models: Callable[[Any], list[str]] = _OPENAI_IDS
    readiness_paths: tuple[str, ...] = ()  # checked at the server root before the model list
    chat_path: str = "/chat/completions"
    chat_from_root: bool = False
    query: Callable[[Mapping[str, str]], str] = lambda _opts: ""

    def headers(self, api_key: str | None, header: str | None = None) -> dict[str, str]:
        out = dict(self.fixed_headers)
        if api_key:
            name = header or self.auth_header
            out[name] = f"Bearer {api_key}" if self.bearer and name == "Authorization" else api_key
        return out

    def _url(self, base_url: str, path: str, from_root: bool, opts: Mapping[str, str]) -> str:
        prefix = root_of(base_url) if from_root else base_url.rstrip("/")
        return prefix + path + self.query(opts)

    def list_models(
        self,
        base_url: str,
        api_key: str | None,
        header: str | None = None,
        opts: Mapping[str, str] | None = None,
    ) -> HttpCall:
        url = self._url(base_url, self.models_path, self.models_from_root, opts or {})
        return HttpCall("GET", url, self.headers(api_key, header))

    def readiness(self, base_url: str) -> list[HttpCall]:
        return [HttpCall("GET", root_of(base_url) + p) for p in self.readiness_paths]

    def chat_probe(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        header: str | None = None,
        opts: Mapping[str, str] | None = None,
    ) -> HttpCall:
        path = self.chat_path.format(model=model)
        url = self._url(base_url, path, self.chat_from_root, opts or {})
        return HttpCall("POST", url, self.headers(api_key, header), self.chat_body(model))

    def chat_body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        }


@dataclass(frozen=True)
class _Ollama(Dialect):
    def chat_body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "stream": False,
            "options": {"num_predict": 1},
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        }


def _azure_query(opts: Mapping[str, str]) -> str:
    return f"?api-version={opts.get('api_version', '2024-10-21')}"


_OPENAI = Dialect()

DIALECTS: Mapping[ProviderType, Dialect] = {
    ProviderType.OPENAI: _OPENAI,
    ProviderType.OPENAI_COMPATIBLE: _OPENAI,
    ProviderType.VLLM: Dialect(readiness_paths=("/health",)),
    ProviderType.LOCALAI: Dialect(readiness_paths=("/readyz",)),
    ProviderType.ANTHROPIC: Dialect(
        auth_header="x-api-key",
        bearer=False,
        fixed_headers={"anthropic-version": ANTHROPIC_VERSION},
        models_path="/v1/models",
        models_from_root=True,
        chat_path="/v1/messages",
        chat_from_root=True,
    ),
    ProviderType.AZURE_OPENAI: Dialect(
        auth_header="api-key",
        bearer=False,
        models_path="/openai/models",
        models_from_root=True,
        chat_path="/openai/deployments/{model}/chat/completions",
        chat_from_root=True,
        query=_azure_query,
    ),
    ProviderType.OLLAMA: _Ollama(
        models_path="/api/tags",
        models_from_root=True,
        parse_models=_ids("models", "name"),
        chat_path="/api/chat",
        chat_from_root=True,
    ),
}


def dialect(provider_type: ProviderType) -> Dialect:
    return DIALECTS[provider_type]
