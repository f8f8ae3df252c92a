"""How a request is sent to one provider: URL, headers and body per provider type.

OpenAI, OpenAI-compatible, vLLM and LocalAI get the request untouched except the model name,
auth and, for streams, the option that asks for usage; when neither needs changing, they get the
client's own bytes. Azure OpenAI gets its deployment URL.
Anthropic and Ollama get a translated body (``signalbox_providers.translate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

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


@dataclass(slots=True)
class Call:
    url: str
    body: Mapping[str, Any]
    wire: Wire
    headers: Mapping[str, str]
    raw: bytes | None = None  # the client's own bytes, when ``body`` is sent unchanged

    def __repr__(self) -> str:  # never the headers: they carry the key
        return f"Call(url={self.url!r}, wire={self.wire!r})"

    def data(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.body)


def headers_for(entry: ProviderEntry) -> dict[str, str]:
    """The provider's request headers (auth included); callers may cache them per entry."""
    header = entry.spec.auth.header if entry.spec.auth else None
    out = dialects.dialect(entry.spec.type).headers(entry.api_key, header)
    out["Content-Type"] = "application/json"
    return out


def _openai_body(body: Mapping[str, Any], model: str) -> Mapping[str, Any]:
    """The body with the upstream model name and, for a stream, usage asked for; ``body``
    itself when nothing changes."""
    stream = body.get("stream")
    if body.get("model") == model and (
        not stream or (body.get("stream_options") or {}).get("include_usage") is True
    ):
        return body
    out = dict(body)
    out["model"] = model
    if stream:
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
    raw: bytes | None = None,
) -> Call:
    """The upstream call for ``body`` (whose bytes are ``raw``, when known) on ``entry`` at
    ``base_url``, asking for ``model``."""
    kind_path = "/chat/completions" if kind == "chat" else "/embeddings"
    ptype = entry.spec.type
    if headers is None:
        headers = headers_for(entry)
    if ptype in _OPENAI_STYLE:
        url = base_url.rstrip("/") + kind_path
    else:
        root = dialects.root_of(base_url)
        if ptype == ProviderType.AZURE_OPENAI:
            version = entry.spec.azure.api_version if entry.spec.azure else "2024-10-21"
            url = f"{root}/openai/deployments/{model}{kind_path}?api-version={version}"
        elif ptype == ProviderType.OLLAMA and kind == "embeddings":
            url = f"{root}/v1/embeddings"
        elif ptype == ProviderType.OLLAMA:
            return Call(f"{root}/api/chat", ollama.to_ollama(body, model), "ollama", headers)
        elif kind == "embeddings":
            raise Unsupported(f"{ptype.value} providers do not serve embeddings")
        else:
            body = anthropic_request.to_anthropic(body, model)
            return Call(f"{root}/v1/messages", body, "anthropic", headers)
    sent = _openai_body(body, model)
    return Call(url, sent, "openai", headers, raw if sent is body and _unambiguous(raw) else None)


_STEERING = (b'"model"', b'"stream"', b'"stream_options"')


def _unambiguous(raw: bytes | None) -> bool:
    """Whether ``raw`` names each field the router acts on at most once. With a repeated key
    the router and the upstream might read different values (parsers differ on which one
    wins), so such a body is sent as the router read it. A string value spelling one of these
    names counts too; that only costs a re-encoding."""
    return raw is not None and all(raw.count(key) <= 1 for key in _STEERING)
