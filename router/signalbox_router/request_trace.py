"""Each model request's trace: one span for the request and one child span per attempt, named
and attributed by the OpenTelemetry GenAI semantic conventions (of the pinned
``opentelemetry-semantic-conventions``), plus Signalbox's own ``signalbox.*`` attributes.

The request span (kind SERVER, ``{operation} {model}``, e.g. ``chat gpt-4o-mini``) continues a
``traceparent`` the client sent and is current for the request's task, so every log line
written for the request names it. It says what the client asked (``gen_ai.request.*``) and what
came of it: policy, provider, attempts, status, tokens, cache verdict and time waited in line
for a rate limit. Each attempt's span (kind CLIENT, ``{operation} {upstream model}``) is sent
upstream in ``traceparent``, so a provider that traces (vLLM, another gateway, the fake) joins
the trace; it says provider, endpoint, attempt number, outcome, tokens, finish reasons, and for
a stream its time to first token and commit point.

A prompt or an answer is recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is ``true`` (the GenAI instrumentations' own switch; off by default), and then with every Secret
value the router holds masked. A key never is. With tracing off the router holds no ``Tracing``
and the request path does no tracing work: one ``is None`` test where a span would start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from multidict import CIMultiDict
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    server_attributes,
    url_attributes,
)
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import SpanKind, Status, StatusCode

from signalbox_router import redaction
from signalbox_router.access_log import Access

CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_ADDRESSES = 4096  # endpoints whose address attributes are kept (pods come and go)
SCHEMA = Schemas.V1_44_0.value

# The client API's path -> the GenAI operation it is.
OPERATIONS: Mapping[str, str] = {
    "/v1/chat/completions": gen_ai.GenAiOperationNameValues.CHAT.value,
    "/v1/messages": gen_ai.GenAiOperationNameValues.CHAT.value,
    "/v1/responses": gen_ai.GenAiOperationNameValues.CHAT.value,
    "/v1/completions": gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
    "/v1/embeddings": gen_ai.GenAiOperationNameValues.EMBEDDINGS.value,
}
# LLMProvider spec.type -> gen_ai.provider.name: the conventions' well-known value where there
# is one, else the type in lower case.
PROVIDER_NAMES: Mapping[str, str] = {
    "OpenAI": gen_ai.GenAiProviderNameValues.OPENAI.value,
    "Anthropic": gen_ai.GenAiProviderNameValues.ANTHROPIC.value,
    "AzureOpenAI": gen_ai.GenAiProviderNameValues.AZURE_AI_OPENAI.value,
}
# The request's parameters recorded on its span (the body is the chat shape every client API
# is read into).
_ASKED = (
    ("max_tokens", gen_ai.GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_completion_tokens", gen_ai.GEN_AI_REQUEST_MAX_TOKENS, int),
    ("temperature", gen_ai.GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", gen_ai.GEN_AI_REQUEST_TOP_P, float),
    ("seed", gen_ai.GEN_AI_REQUEST_SEED, int),
)


def content_wanted(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(CONTENT_VARIABLE, "").strip().lower() == "true"


class Tracing:
    """The router's tracer and what its spans may hold; the router has none when tracing is
    off. ``secrets``: the Secret values to mask in recorded content."""

    def __init__(
        self,
        tracer: trace.Tracer,
        secrets: Callable[[], Iterable[bytes]],
        *,
        content: bool = False,
    ) -> None:
        self.tracer, self.secrets, self.content = tracer, secrets, content
        self._addresses: dict[str, dict[str, Any]] = {}

    @classmethod
    def of(cls, provider: trace.TracerProvider, secrets: Callable[[], Iterable[bytes]]) -> Tracing:
        tracer = provider.get_tracer("signalbox_router", schema_url=SCHEMA)
        return cls(tracer, secrets, content=content_wanted())

    def request(
        self, headers: Sequence[tuple[bytes, bytes]], method: str, path: str
    ) -> RequestTrace:
        """The span of a request to model route ``path``, continuing the client's
        ``traceparent``, made current for the calling task until ``RequestTrace.end``."""
        parent = propagate.extract(headers, getter=_ASGI_HEADERS)
        operation = OPERATIONS[path]
        span = self.tracer.start_span(
            operation,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                gen_ai.GEN_AI_OPERATION_NAME: operation,
                http_attributes.HTTP_REQUEST_METHOD: method,
                http_attributes.HTTP_ROUTE: path,
                url_attributes.URL_PATH: path,
            },
        )
        # A span the sampler dropped is not made current: no log line names a trace that is
        # nowhere to be found, and an unsampled request costs only the sampler's decision.
        token = None
        if span.is_recording():
            token = context.attach(trace.set_span_in_context(span, parent))
        return RequestTrace(self, span, operation, token)

    def address(self, endpoint: str) -> dict[str, Any]:
        """``server.address`` and ``server.port`` of an endpoint URL, worked out once."""
        found = self._addresses.get(endpoint)
        if found is None:
            parts = urlsplit(endpoint)
            found = {}
            if parts.hostname:
                found[server_attributes.SERVER_ADDRESS] = parts.hostname
            if parts.port:
                found[server_attributes.SERVER_PORT] = parts.port
            if len(self._addresses) < MAX_ADDRESSES:
                self._addresses[endpoint] = found
        return found


class RequestTrace:
    """One request's span, and the spans of its attempts."""

    __slots__ = ("operation", "span", "token", "tracing", "waited")

    def __init__(
        self,
        tracing: Tracing,
        span: trace.Span,
        operation: str,
        token: Token[Context] | None,
    ) -> None:
        self.tracing, self.span, self.operation, self.token = tracing, span, operation, token
        self.waited = 0.0  # seconds spent in line for a rate limit

    def asked(self, body: Mapping[str, Any]) -> None:
        """What the client asked for: the model, the request's parameters, streaming."""
        span = self.span
        if not span.is_recording():
            return
        model = body.get("model")
        if type(model) is str:
            span.set_attribute(gen_ai.GEN_AI_REQUEST_MODEL, model)
        for key, attribute, kind in _ASKED:
            value = body.get(key)
            if type(value) is int or type(value) is float:
                span.set_attribute(attribute, kind(value))
        if self.operation != gen_ai.GenAiOperationNameValues.EMBEDDINGS.value:
            span.set_attribute(gen_ai.GEN_AI_REQUEST_STREAM, bool(body.get("stream")))
        if self.tracing.content:
            asked = {k: body[k] for k in ("messages", "prompt", "input") if k in body}
            span.set_attribute(gen_ai.GEN_AI_INPUT_MESSAGES, self.masked(asked))

    def attempt(
        self, provider: str, provider_type: str, model: str, endpoint: str, number: int
    ) -> AttemptTrace:
        """The span of attempt ``number`` at ``provider`` (asking it for ``model``). Under a
        request the sampler dropped, none: the request's own context goes upstream, so the
        provider hears that the trace is not sampled."""
        if not self.span.is_recording():
            return AttemptTrace(self, self.span)
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: self.operation,
            gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER_NAMES.get(provider_type, provider_type.lower()),
            gen_ai.GEN_AI_REQUEST_MODEL: model,
            "signalbox.provider": provider,
            "signalbox.attempt": number,
            **self.tracing.address(endpoint),
        }
        span = self.tracing.tracer.start_span(
            f"{self.operation} {model}",
            context=trace.set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return AttemptTrace(self, span)

    def end(self, access: Access) -> None:
        """End the request's span with what ``access`` says came of it; the span stops being
        current."""
        span = self.span
        try:
            if span.is_recording():
                self._describe(span, access)
            span.end()
        finally:
            if self.token is not None:
                context.detach(self.token)

    def _describe(self, span: trace.Span, access: Access) -> None:
        if access.model:
            span.update_name(f"{self.operation} {access.model}")
        status = access.status
        attributes: dict[str, Any] = {
            http_attributes.HTTP_RESPONSE_STATUS_CODE: status,
            "signalbox.request_id": access.request_id,
            "signalbox.attempts": access.attempts,
        }
        for key, value in (
            ("signalbox.policy", access.policy),
            ("signalbox.provider", access.provider),
            ("signalbox.cache", access.cache),
        ):
            if value:
                attributes[key] = value
        if access.usage is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = access.usage[0]
            attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = access.usage[1]
            attributes["signalbox.tokens_estimated"] = access.estimated
        if self.waited:
            attributes["signalbox.limiter_wait"] = round(self.waited, 6)
        if status >= 400:
            attributes[error_attributes.ERROR_TYPE] = str(status)
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def masked(self, value: Any) -> str:
        """``value`` as JSON, every Secret value the router holds masked."""
        return redaction.redact(orjson.dumps(value), self.tracing.secrets()).decode(
            "utf-8", errors="replace"
        )


class AttemptTrace:
    """One attempt's span: sent upstream in ``traceparent``, ended with the attempt."""

    __slots__ = ("request", "span", "stream")

    def __init__(self, request: RequestTrace, span: trace.Span) -> None:
        self.request, self.span = request, span
        self.stream: Finishing | None = None

    def inject(self, headers: CIMultiDict[str]) -> None:
        """The attempt's context into the upstream request's headers (``traceparent``)."""
        propagate.inject(headers, context=trace.set_span_in_context(self.span))

    def committed(self, seconds: float, stream: Finishing) -> None:
        """A stream reached its commit point (its first token) ``seconds`` after the attempt
        began; its finish reasons are read from ``stream`` when it ends."""
        self.stream = stream
        self.span.set_attribute(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, round(seconds, 6))
        self.span.add_event("signalbox.commit_point")

    def answered(self, body: bytes) -> None:
        """A complete answer: its id, model and finish reasons (and, when content is
        recorded, the answer)."""
        span = self.span
        if not span.is_recording() or self.request.operation == "embeddings":
            return
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if type(answer) is not dict:
            return
        for key, attribute in (
            ("id", gen_ai.GEN_AI_RESPONSE_ID),
            ("model", gen_ai.GEN_AI_RESPONSE_MODEL),
        ):
            if type(answer.get(key)) is str:
                span.set_attribute(attribute, answer[key])
        reasons = finish_reasons(answer)
        if reasons:
            span.set_attribute(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
        if self.request.tracing.content:
            span.set_attribute(gen_ai.GEN_AI_OUTPUT_MESSAGES, self.request.masked(answer))

    def end(
        self,
        code: int,
        outcome: str | None,
        usage: tuple[int, int] | None,
        estimated: bool,
    ) -> None:
        """End the span: ``outcome`` is the upstream failure's, if any; ``code`` the status
        (499: the client left, 500: a fault of the router's)."""
        span = self.span
        if outcome is None and code != 200:
            outcome = _INTERRUPTED.get(code, "internal_error")
        if span.is_recording():
            attributes: dict[str, Any] = {
                http_attributes.HTTP_RESPONSE_STATUS_CODE: code,
                "signalbox.outcome": outcome or "ok",
            }
            if usage is not None:
                attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = usage[0]
                attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = usage[1]
                attributes["signalbox.tokens_estimated"] = estimated
            stream = self.stream
            if stream is not None and stream.finish_reasons:
                attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = list(stream.finish_reasons)
            if outcome is not None:
                attributes[error_attributes.ERROR_TYPE] = outcome
            span.set_attributes(attributes)
            if outcome is not None or code >= 500:
                span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


_INTERRUPTED = {499: "client_closed"}


class Finishing(Protocol):
    """What a stream tells its trace (``StreamTranslator.finish_reasons``)."""

    @property
    def finish_reasons(self) -> Sequence[str]: ...


def finish_reasons(answer: Mapping[str, Any]) -> list[str]:
    """Why an answer ended, in any client API's shape: chat and completions' choices, a
    Messages ``stop_reason``, a Responses ``status``."""
    choices = answer.get("choices")
    if type(choices) is list:
        return [
            c["finish_reason"]
            for c in choices
            if type(c) is dict and type(c.get("finish_reason")) is str
        ]
    for key in ("stop_reason", "status"):
        if type(answer.get(key)) is str:
            return [answer[key]]
    return []


class _AsgiHeaders(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads a propagation header from an ASGI scope's headers (lower-case byte pairs)."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return found or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_ASGI_HEADERS = _AsgiHeaders()
