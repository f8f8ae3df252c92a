"""The OpenAI dialect, which OpenAI-compatible APIs, vLLM and LocalAI speak too, and which the
other dialects start from (they override what differs).

OpenAI-style providers get the client's request untouched except the model name and, for
streams, the option that asks for usage; when neither needs changing, they get the client's own
bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from signalbox_api.provider import LLMProviderSpec, ProviderType
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
    root_of,
    usage_of,
)
from signalbox_providers.outcomes import Outcome, classify_status
from signalbox_providers.translate.openai_format import JSON, kind_for_status
from signalbox_providers.translate.openai_format import error_body as openai_error_body

_OPENAI_IDS = ids("data", "id")
_NATIVE_PATHS = {
    ClientApi.CHAT: "/chat/completions",
    ClientApi.MESSAGES: "/messages",
    ClientApi.RESPONSES: "/responses",
    ClientApi.COMPLETIONS: "/completions",
}


@dataclass(frozen=True)
class Dialect:
    """The OpenAI way; other types override what differs."""

    auth_header: str = "Authorization"
    bearer: bool = True
    fixed_headers: Mapping[str, str] = field(default_factory=dict)
    models_path: str = "/models"  # appended to the base URL
    models_from_root: bool = False
    parse_models: Callable[[Any], list[str]] = _OPENAI_IDS
    readiness_paths: tuple[str, ...] = ()  # checked at the server root before the model list
    queue_metrics_path: str | None = None  # Prometheus page with the server's waiting queue
    # What may end a base URL as the API's own path (not a gateway's prefix): root() drops it.
    api_suffixes: tuple[str, ...] = ("/v1",)
    # Client APIs besides OpenAI chat that this type serves itself (``ClientApi``).
    speaks: frozenset[ClientApi] = frozenset()

    # -- calls ---------------------------------------------------------------------------
    def root(self, base_url: str) -> str:
        """The server's root under ``base_url`` (``root_of``, with this type's API paths)."""
        return root_of(base_url, self.api_suffixes)

    def headers(self, api_key: str | None, header: str | None = None) -> dict[str, str]:
        out = dict(self.fixed_headers)
        if api_key:
            name = header or self.auth_header
            out[name] = f"Bearer {api_key}" if self.bearer and name == "Authorization" else api_key
        return out

    def options(self, spec: LLMProviderSpec) -> Mapping[str, str]:
        """Per-provider settings the URLs need (none for most types)."""
        return {}

    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        return base_url.rstrip("/") + ("/chat/completions" if kind == "chat" else "/embeddings")

    def native_url(self, api: ClientApi, base_url: str, model: str, opts: Mapping[str, str]) -> str:
        """Where a request in ``api`` goes when this type serves it itself; Unsupported when
        it does not (``speaks``)."""
        if api not in self.speaks:
            raise Unsupported(f"this provider type does not serve the {api.value} API")
        return base_url.rstrip("/") + _NATIVE_PATHS[api]

    def request(self, parts: RequestParts) -> Outbound:
        """The client's OpenAI request for ``parts.model`` at ``parts.base_url`` (the client's
        own bytes when nothing changes). Raises Unsupported."""
        body = parts.body
        sent = _with_model(body, parts.model)
        data = parts.raw if sent is body and _unambiguous(parts.raw) else None
        url = self.url(parts.base_url, parts.kind, parts.model, parts.options)
        return Outbound(url, data or encode(sent))

    # -- answers -------------------------------------------------------------------------
    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        """A 2xx body, validated. Raises InvalidAnswer."""
        if kind == "chat":
            return checked_answer(raw, "choices", "message")
        return checked_answer(raw, "data")

    def classify(self, status: int, body: Any) -> Outcome:
        return classify_status(status, body)

    def error(self, status: int, body: Any) -> JSON:
        """An upstream error body as OpenAI's error shape."""
        kind, code = kind_for_status(status)
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping):  # OpenAI's own shape: kept, with exactly its four fields
            return {
                "error": {
                    "message": _text(error.get("message")) or f"upstream answered HTTP {status}",
                    "type": _text(error.get("type")) or kind,
                    "param": _text(error.get("param")),
                    "code": _text(error.get("code")) or code,
                }
            }
        message = body.get("message") if isinstance(body, Mapping) else None
        return openai_error_body(str(message or f"upstream answered HTTP {status}"), kind, code)

    def stream(self, model: str, client_usage: bool) -> StreamTranslator:
        return streams.OpenAIEvents(client_usage)

    # -- probes (the operator's) ---------------------------------------------------------
    def list_models(
        self,
        base_url: str,
        api_key: str | None,
        header: str | None = None,
        opts: Mapping[str, str] | None = None,
    ) -> HttpCall:
        prefix = self.root(base_url) if self.models_from_root else base_url.rstrip("/")
        url = prefix + self.models_path + self._query(opts or {})
        return HttpCall("GET", url, self.headers(api_key, header))

    def readiness(self, base_url: str) -> list[HttpCall]:
        return [HttpCall("GET", self.root(base_url) + p) for p in self.readiness_paths]

    def listed_facts(self, listing: Any) -> dict[str, model_facts.ModelFacts]:
        """What the model list itself says of each model (vLLM, OpenRouter)."""
        return model_facts.from_listing(listing)

    def show_model(
        self, base_url: str, model: str, api_key: str | None, header: str | None = None
    ) -> HttpCall | None:
        """A call describing one model in more detail, for types that have one."""
        return None

    def parse_shown(self, body: Any) -> model_facts.ModelFacts:
        return model_facts.ModelFacts()

    def chat_probe(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        header: str | None = None,
        opts: Mapping[str, str] | None = None,
    ) -> HttpCall:
        url = self.url(base_url, "chat", model, opts or {})
        return HttpCall("POST", url, self.headers(api_key, header), self.chat_body(model))

    def chat_body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        }

    def _query(self, opts: Mapping[str, str]) -> str:
        return ""


def checked_answer(raw: bytes, key: str, holds: str | None = None) -> Answer:
    """An OpenAI answer whose ``key`` is a list of objects, each with a ``holds`` object when
    given (what clients and the response cache read), with valid usage. Raises InvalidAnswer."""
    body = loads_object(raw, "the answer")
    items = body.get(key)
    if type(items) is not list:
        raise InvalidAnswer(f"the answer has no {key!r} list")
    if not items and key == "choices":  # a client reads the first choice
        raise InvalidAnswer("the answer has no choices")
    for item in items:
        if type(item) is not dict or (holds is not None and type(item.get(holds)) is not dict):
            raise InvalidAnswer(f"the answer's {key!r} are not all well-formed objects")
        if key == "choices" and not _typed_choice(item, holds):
            raise InvalidAnswer("the answer has a choice whose fields have the wrong types")
    return Answer(raw, usage_of(body, "prompt_tokens", "completion_tokens"))


def _typed_choice(choice: dict[str, Any], holds: str | None) -> bool:
    """Whether the fields a client reads of one choice have their types: text or null (a
    message's content may also be a list of parts)."""
    if type(choice.get("finish_reason")) not in _TEXT_OR_NULL:
        return False
    if holds is None:
        return type(choice.get("text")) in _TEXT_OR_NULL
    message = choice[holds]
    return (
        type(message.get("content")) in _CONTENT_TYPES
        and type(message.get("refusal")) in _TEXT_OR_NULL
    )


_TEXT_OR_NULL = frozenset({str, type(None)})
_CONTENT_TYPES = frozenset({str, list, type(None)})


def _with_model(body: Mapping[str, Any], model: str) -> Mapping[str, Any]:
    """The body with the upstream model name and, for a stream, usage asked for (for
    metering); ``body`` itself when nothing changes."""
    stream = body.get("stream")
    if body.get("model") == model and (
        not stream or (body.get("stream_options") or {}).get("include_usage") is True
    ):
        return body
    out = dict(body)
    out["model"] = model
    if stream:
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True  # dropped again on the way back if the client did not ask
        out["stream_options"] = options
    return out


def _unambiguous(raw: bytes | None) -> bool:
    """Whether ``raw`` names each field the router acts on at most once. With a repeated key
    the router and the upstream might read different values (parsers differ on which one
    wins), so such a body is sent as the router read it. A string value spelling one of these
    names counts too; that only costs a re-encoding."""
    return (
        raw is not None
        and raw.count(b'"model"') <= 1
        and raw.count(b'"stream"') <= 1
        and raw.count(b'"stream_options"') <= 1
    )


_COMPLETIONS = frozenset({ClientApi.COMPLETIONS})

DIALECTS: Mapping[ProviderType, Dialect] = {
    # OpenAI itself keeps stored responses; OpenAI-compatible APIs serve chat and completions.
    ProviderType.OPENAI: Dialect(speaks=frozenset({ClientApi.RESPONSES, ClientApi.COMPLETIONS})),
    ProviderType.OPENAI_COMPATIBLE: Dialect(speaks=_COMPLETIONS),
    ProviderType.VLLM: Dialect(
        readiness_paths=("/health",), queue_metrics_path="/metrics", speaks=_COMPLETIONS
    ),
    ProviderType.LOCALAI: Dialect(readiness_paths=("/readyz",), speaks=_COMPLETIONS),
}


def _text(value: Any) -> str | None:
    """A string field of an upstream error, bounded; None when absent or not text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value[:2000] if isinstance(value, str) and value else None
