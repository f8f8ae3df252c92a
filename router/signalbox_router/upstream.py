"""How a request is sent to one provider: URL, headers and body per provider type.

OpenAI, OpenAI-compatible, vLLM and LocalAI get the request untouched except the model name,
auth and, for streams, the option that asks for usage. Azure OpenAI gets its deployment URL.
Anthropic and Ollama get a translated body (``signalbox_providers.translate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects
from signalbox_providers.translate import anthropic_request, ollama
from signalbox_router.inspection import Kind
from signalbox_router.snapshot import ProviderEntry

Wire = Literal["openai", "anthropic", "ollama"]

_OPENAI_STYLE = frozenset(
    {ProviderType.OPENAI, ProviderType.OPENAI_COMPATIBLE, ProviderType.VLLM, ProviderType.LOCALAI}
)


class Unsupported(ValueError):
    """The provider type cannot serve this kind of request."""


@dataclass(frozen=True)
class Call:
    url: str
    body: dict[str, Any]
    wire: Wire
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def headers_for(entry: ProviderEntry) -> dict[str, str]:
    """The provider's request headers (auth included); callers may cache them per entry."""
    header = entry.spec.auth.header if entry.spec.auth else None
    out = dialects.dialect(entry.spec.type).headers(entry.api_key, header)
    out["Content-Type"] = "application/json"
    return out


def _openai_body(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    out = dict(body)
    out["model"] = model
    if out.get("stream"):
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True  # for metering; stripped again if the client did not ask
        out["stream_options"] = options
    return out


def build(
    entry: ProviderEntry,
    base_url: str,
    kind: Kind,
    body: Mapping[str, Any],
    model: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Call:
    """The upstream call for ``body`` on ``entry`` at ``base_url``, asking for ``model``."""
    kind_path = "/chat/completions" if kind == "chat" else "/embeddings"
    ptype = entry.spec.type
    if headers is None:
        headers = headers_for(entry)
    if ptype in _OPENAI_STYLE:
        return Call(base_url.rstrip("/") + kind_path, _openai_body(body, model), "openai", headers)
    root = dialects.root_of(base_url)
    if ptype == ProviderType.AZURE_OPENAI:
        version = entry.spec.azure.api_version if entry.spec.azure else "2024-10-21"
        url = f"{root}/openai/deployments/{model}{kind_path}?api-version={version}"
        return Call(url, _openai_body(body, model), "openai", headers)
    if ptype == ProviderType.OLLAMA:
        if kind == "embeddings":
            return Call(f"{root}/v1/embeddings", _openai_body(body, model), "openai", headers)
        return Call(f"{root}/api/chat", ollama.to_ollama(body, model), "ollama", headers)
    if kind == "embeddings":
        raise Unsupported(f"{ptype.value} providers do not serve embeddings")
    return Call(
        f"{root}/v1/messages", anthropic_request.to_anthropic(body, model), "anthropic", headers
    )
