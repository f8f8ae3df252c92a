"""LLMProvider: one upstream LLM endpoint, its limits, its health check and what was observed.

``spec`` is what a platform team declares; ``status`` is written only by the operator.
"""

from __future__ import annotations

import enum
import urllib.parse
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from signalbox_api.conditions import Condition
from signalbox_api.primitives import (
    HTTP_HEADER_PATTERN,
    ApiModel,
    DNSLabel,
    DNSSubdomain,
    Duration,
    ModelName,
    Money,
    parse_duration,
)
from signalbox_api.validation import cel, duration_between, has, rules


class ProviderType(enum.StrEnum):
    OPENAI = "OpenAI"
    ANTHROPIC = "Anthropic"
    AZURE_OPENAI = "AzureOpenAI"
    OLLAMA = "Ollama"
    VLLM = "VLLM"
    LOCALAI = "LocalAI"
    OPENAI_COMPATIBLE = "OpenAICompatible"


CLOUD_TYPES = (ProviderType.OPENAI, ProviderType.ANTHROPIC, ProviderType.AZURE_OPENAI)


class Capability(enum.StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    STREAMING = "streaming"
    TOOLS = "tools"
    VISION = "vision"
    JSON_MODE = "jsonMode"
    JSON_SCHEMA = "jsonSchema"
    REASONING = "reasoning"


class Tier(enum.StrEnum):
    LOCAL = "Local"
    CLOUD = "Cloud"


class RateLimitAlgorithm(enum.StrEnum):
    TOKEN_BUCKET = "TokenBucket"  # noqa: S105 (an algorithm name)
    SLIDING_WINDOW = "SlidingWindow"
    FIXED_WINDOW = "FixedWindow"


class HealthCheckMode(enum.StrEnum):
    LIST_MODELS = "ListModels"
    CHAT_PROBE = "ChatProbe"
    HTTP_GET = "HTTPGet"


class CircuitState(enum.StrEnum):
    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


class CircuitOverride(enum.StrEnum):
    FORCE_OPEN = "force-open"
    FORCE_CLOSED = "force-closed"


CIRCUIT_ANNOTATION = "signalbox.dev/circuit"
# ``run``: the operator runs the provider test suite once and writes status.selfTest.
SELF_TEST_ANNOTATION = "signalbox.dev/self-test"


def _is_http_url(text: str) -> bool:
    """The twin of CEL's ``isURL(self) && url(self).getScheme() in ['http', 'https']``."""
    if any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        return False  # Go's URL parser refuses these; urlsplit would not
    try:
        return urllib.parse.urlsplit(text).scheme in ("http", "https")
    except ValueError:
        return False


HttpPath = Annotated[str, StringConstraints(pattern=r"^(/[^\s]*)?$", max_length=256)]


class ServiceRef(ApiModel):
    """An in-cluster Service whose ready pods (found through EndpointSlices) serve the API."""

    name: DNSLabel = Field(description="Name of the Service.")
    namespace: DNSLabel | None = Field(
        default=None, description="Namespace of the Service; defaults to the provider's own."
    )
    port: int = Field(ge=1, le=65535, description="Service port that speaks HTTP.")
    scheme: Literal["http", "https"] = Field(
        default="http", description="http or https, used to reach each pod."
    )
    path: HttpPath = Field(
        default="",
        description="Path prefix before the API routes, e.g. /v1 for vLLM; empty for none.",
    )


class Endpoint(ApiModel):
    """Where the provider is: exactly one of an external url or an in-cluster service."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "has(self.url) != has(self.service)",
                "exactly one of spec.endpoint.url or spec.endpoint.service must be set",
                check=lambda self: has(self, "url") != has(self, "service"),
            )
        )
    }

    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None,
        description="Base URL of an external API, e.g. https://api.openai.com/v1.",
        json_schema_extra=rules(
            cel(
                "isURL(self) && url(self).getScheme() in ['http', 'https']",
                "spec.endpoint.url must be an absolute http or https URL",
                check=_is_http_url,
            ),
            cel(
                "!self.contains('?') && !self.contains('#')",
                "spec.endpoint.url must not carry a query or a fragment: API paths go after it",
                check=lambda text: "?" not in text and "#" not in text,
            ),
        ),
    )
    service: ServiceRef | None = Field(
        default=None, description="In-cluster Service; the router balances across its ready pods."
    )


class SecretKeyRef(ApiModel):
    """A key in a Secret in the provider's namespace. Its value is never copied anywhere."""

    name: DNSSubdomain = Field(description="Name of the Secret.")
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)] = Field(
        description="Key within the Secret whose value is the API key."
    )


class Auth(ApiModel):
    """How to authenticate to the provider."""

    secret_ref: SecretKeyRef = Field(description="The Secret key holding the API key.")
    header: (
        Annotated[str, StringConstraints(pattern=HTTP_HEADER_PATTERN, max_length=128)] | None
    ) = Field(
        default=None,
        description="Header that carries the key; defaults by type (Authorization: Bearer, "
        "x-api-key for Anthropic, api-key for Azure OpenAI).",
    )


class Azure(ApiModel):
    """Settings only Azure OpenAI needs."""

    api_version: Annotated[
        str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$", max_length=32)
    ] = Field(default="2024-10-21", description="The api-version query parameter, e.g. 2024-10-21.")


class Cost(ApiModel):
    """Prices used for cost metering, per million tokens."""

    input_per_m_tok: Money = Field(
        alias="inputPerMTok", description='Price of one million input tokens, e.g. "2.50".'
    )
    output_per_m_tok: Money = Field(
        alias="outputPerMTok", description='Price of one million output tokens, e.g. "10.00".'
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        default="USD", description="ISO 4217 currency code."
    )


class ModelSpec(ApiModel):
    """A model the provider serves, with what it can do and what it costs."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.maxOutputTokens) || !has(self.contextWindow)"
                " || self.maxOutputTokens <= self.contextWindow",
                "maxOutputTokens must not exceed contextWindow",
                check=lambda self: (
                    not has(self, "maxOutputTokens")
                    or not has(self, "contextWindow")
                    or self["maxOutputTokens"] <= self["contextWindow"]
                ),
            )
        )
    }

    name: ModelName = Field(description="Model name as the upstream knows it.")
    aliases: list[ModelName] = Field(
        default_factory=list,
        max_length=16,
        description="Other names clients may use for this model.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=9,
        description="What the model supports: chat, completions, embeddings, streaming, tools, "
        "vision, jsonMode, jsonSchema, reasoning.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    context_window: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Maximum tokens of prompt plus output."
    )
    max_output_tokens: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Maximum tokens the model generates."
    )
    cost: Cost | None = Field(default=None, description="Prices for cost metering.")


class RateLimit(ApiModel):
    """Limits the router enforces towards this provider (per router process; across all
    replicas when they share a Redis)."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "has(self.requestsPerMinute) || has(self.tokensPerMinute)"
                " || has(self.maxConcurrency)",
                "spec.rateLimit needs at least one of requestsPerMinute, tokensPerMinute "
                "or maxConcurrency",
                check=lambda self: any(
                    has(self, k) for k in ("requestsPerMinute", "tokensPerMinute", "maxConcurrency")
                ),
            )
        )
    }

    requests_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests allowed per minute."
    )
    tokens_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="Tokens (in plus out) allowed per minute."
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests allowed at once above the steady rate (TokenBucket only; the "
        "windows count whole minutes).",
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, le=100_000, description="Requests in flight at once."
    )
    algorithm: RateLimitAlgorithm = Field(
        default=RateLimitAlgorithm.TOKEN_BUCKET,
        description="TokenBucket, SlidingWindow or FixedWindow.",
    )


class HealthCheck(ApiModel):
    """How the operator probes the provider."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "self.mode != 'ChatProbe' || has(self.probeModel)",
                "spec.healthCheck.probeModel is required when mode is ChatProbe",
                check=lambda self: self["mode"] != "ChatProbe" or has(self, "probeModel"),
            ),
            cel(
                "self.mode != 'HTTPGet' || has(self.path)",
                "spec.healthCheck.path is required when mode is HTTPGet",
                check=lambda self: self["mode"] != "HTTPGet" or has(self, "path"),
            ),
            cel(
                "duration(self.timeout) <= duration(self.interval)",
                "spec.healthCheck.timeout must not exceed spec.healthCheck.interval",
                check=lambda self: (
                    parse_duration(self["timeout"]) <= parse_duration(self["interval"])
                ),
            ),
        )
    }

    mode: HealthCheckMode = Field(
        default=HealthCheckMode.LIST_MODELS,
        description="ListModels (free; the default), ChatProbe (a one-token completion; spends "
        "tokens) or HTTPGet (a plain GET of path).",
    )
    path: HttpPath | None = Field(
        default=None, description="Path to GET in HTTPGet mode, e.g. /health."
    )
    interval: Duration = Field(
        default="30s",
        description="Time between probes, 1s to 1h. A first failure, a half-open circuit "
        "and a recovery are confirmed by probes a second apart; a change to the provider's "
        "Secret, Service or endpoints is probed at once.",
        json_schema_extra=duration_between("1s", "1h", "spec.healthCheck.interval"),
    )
    timeout: Duration = Field(
        default="5s",
        description="Time a probe may take, 100ms to 5m.",
        json_schema_extra=duration_between("100ms", "5m", "spec.healthCheck.timeout"),
    )
    healthy_threshold: int = Field(
        default=2, ge=1, le=10, description="Consecutive successes that make the provider healthy."
    )
    unhealthy_threshold: int = Field(
        default=3, ge=1, le=10, description="Consecutive failures that make it unhealthy."
    )
    probe_model: ModelName | None = Field(default=None, description="Model used by ChatProbe.")


class CircuitBreaker(ApiModel):
    """The shared circuit the operator drives from probe outcomes."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "duration(self.maxOpenDuration) >= duration(self.openDuration)",
                "spec.circuitBreaker.maxOpenDuration must be at least openDuration",
                check=lambda self: (
                    parse_duration(self["maxOpenDuration"]) >= parse_duration(self["openDuration"])
                ),
            )
        )
    }

    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that open the circuit."
    )
    open_duration: Duration = Field(
        default="30s",
        description="How long the circuit stays open after the first trip; doubles on each "
        "further trip. The operator goes on probing meanwhile: the first probe that succeeds "
        "half-opens the circuit before its time is up.",
        json_schema_extra=duration_between("1s", "24h", "spec.circuitBreaker.openDuration"),
    )
    max_open_duration: Duration = Field(
        default="10m",
        description="Upper bound of the growing open duration.",
        json_schema_extra=duration_between("1s", "24h", "spec.circuitBreaker.maxOpenDuration"),
    )
    half_open_max_requests: int = Field(
        default=1, ge=1, le=100, description="Trial requests allowed while half-open."
    )
    quota_cooldown: Duration = Field(
        default="10m",
        description="How long a router sends no traffic to this provider after it answered "
        "that the account is out of credit or quota (HTTP 402, OpenAI's insufficient_quota, "
        "Anthropic's billing_error); its requests fail over meanwhile.",
        json_schema_extra=duration_between("1s", "24h", "spec.circuitBreaker.quotaCooldown"),
    )
    max_retry_after: Duration = Field(
        default="10m",
        description="The longest a provider's Retry-After keeps it out of traffic; a longer "
        "one is cut to this, and the next successful probe (or the force-closed annotation) "
        "lifts it sooner.",
        json_schema_extra=duration_between("1s", "24h", "spec.circuitBreaker.maxRetryAfter"),
    )


class Timeouts(ApiModel):
    """Timeouts the router applies to requests sent to this provider."""

    connect: Duration = Field(
        default="5s",
        description="Time to establish a connection.",
        json_schema_extra=duration_between("10ms", "5m", "spec.timeouts.connect"),
    )
    first_token: Duration = Field(
        default="60s",
        description="Time until the first response byte.",
        json_schema_extra=duration_between("100ms", "30m", "spec.timeouts.firstToken"),
    )
    stream_idle: Duration = Field(
        default="60s",
        description="Longest silence allowed between streamed chunks.",
        json_schema_extra=duration_between("100ms", "30m", "spec.timeouts.streamIdle"),
    )
    request: Duration = Field(
        default="10m",
        description="Time for the whole request, streaming included.",
        json_schema_extra=duration_between("100ms", "2h", "spec.timeouts.request"),
    )


_CLOUD_LIST = ", ".join(f"'{t.value}'" for t in CLOUD_TYPES)


class LLMProviderSpec(ApiModel):
    """The desired state of an LLMProvider."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                f"!(self.type in [{_CLOUD_LIST}]) || has(self.auth)",
                "spec.auth.secretRef is required for type OpenAI, Anthropic and AzureOpenAI",
                field_path=".auth",
                check=lambda self: self["type"] not in CLOUD_TYPES or has(self, "auth"),
            ),
            cel(
                "!has(self.azure) || self.type == 'AzureOpenAI'",
                "spec.azure is only valid for type AzureOpenAI",
                field_path=".azure",
                check=lambda self: not has(self, "azure") or self["type"] == "AzureOpenAI",
            ),
            cel(
                "self.type != 'AzureOpenAI' || has(self.endpoint.url)",
                "spec.endpoint.url is required for type AzureOpenAI",
                field_path=".endpoint",
                check=lambda self: self["type"] != "AzureOpenAI" or has(self, "endpoint", "url"),
            ),
        )
    }

    type: ProviderType = Field(
        description="OpenAI, Anthropic, AzureOpenAI, Ollama, VLLM, LocalAI or OpenAICompatible. "
        "Sets defaults for auth, paths, probes and usage parsing. Immutable.",
        json_schema_extra=rules(cel("self == oldSelf", "spec.type is immutable")),
    )
    endpoint: Endpoint = Field(description="Where the provider is reached.")
    auth: Auth | None = Field(
        default=None,
        description="API key from a Secret; required for OpenAI, Anthropic and AzureOpenAI.",
    )
    azure: Azure | None = Field(default=None, description="Azure OpenAI settings.")
    priority: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="Lower is preferred; providers with equal priority share load.",
    )
    weight: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Share of load among equal-priority providers under the Weighted strategy.",
    )
    tier: Tier | None = Field(
        default=None,
        description="Local or Cloud; defaults to Cloud for external URLs of cloud types and "
        "Local otherwise.",
    )
    suspend: bool = Field(
        default=False, description="Stop probing and take the provider out of routing."
    )
    models: list[ModelSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Models this provider serves.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    discover_models: bool = Field(
        default=True, description="Fill status.models from the provider's own model list."
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description="Limits the router enforces towards this provider, per router process: "
        "requests and tokens per minute, burst and concurrency.",
    )
    health_check: HealthCheck = Field(
        default_factory=HealthCheck,
        description="How the operator probes the provider: ListModels (the default, free), "
        "ChatProbe or HTTPGet, on an interval, with healthy and unhealthy thresholds.",
    )
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker,
        description="When the shared circuit opens and how long it stays open; the operator "
        "drives it from probe outcomes and the router obeys it.",
    )
    timeouts: Timeouts = Field(
        default_factory=Timeouts,
        description="Timeouts the router applies to requests to this provider: connect, first "
        "token, stream idle and the whole request.",
    )

    def effective_tier(self) -> Tier:
        """The declared tier, or Cloud for external cloud and compatible APIs, else Local."""
        if self.tier is not None:
            return self.tier
        external = self.endpoint.url is not None
        cloudy = self.type in (*CLOUD_TYPES, ProviderType.OPENAI_COMPATIBLE)
        return Tier.CLOUD if external and cloudy else Tier.LOCAL

    def model(self, name: str) -> ModelSpec | None:
        """The declared model called ``name`` or having it as an alias."""
        return next((m for m in self.models if name == m.name or name in m.aliases), None)


class CircuitStatus(ApiModel):
    """The shared circuit breaker's state."""

    state: CircuitState = Field(description="Closed, Open or HalfOpen.")
    since: datetime | None = Field(default=None, description="When the circuit entered this state.")
    open_until: datetime | None = Field(
        default=None, description="When an open circuit turns half-open."
    )
    consecutive_failures: int = Field(
        default=0, ge=0, description="Failures since the last success."
    )
    trips: int = Field(
        default=0, ge=0, description="Times the circuit opened since it last closed."
    )
    override: CircuitOverride | None = Field(
        default=None,
        description="Set when the signalbox.dev/circuit annotation forces the state.",
    )
    rate_limited_until: datetime | None = Field(
        default=None,
        description="Until when the provider asked to be left alone (its Retry-After, cut to "
        "spec.circuitBreaker.maxRetryAfter); kept across operator restarts.",
    )


class ProbeError(ApiModel):
    """The last failed probe."""

    code: int = Field(
        default=0, ge=0, description="HTTP status code; 0 when there was no response."
    )
    reason: str = Field(max_length=64, description="Outcome class, e.g. Timeout or AuthFailed.")
    message: Annotated[str, StringConstraints(max_length=1024)] = Field(
        default="", description="Short description; never contains secrets."
    )


class SelfTestCheck(ApiModel):
    """One check of the provider test suite."""

    name: str = Field(max_length=32, description="listModels, chat, streaming, tools, ...")
    passed: bool | None = Field(default=None, description="Unset when the check was skipped.")
    model: Annotated[str, StringConstraints(max_length=253)] | None = Field(
        default=None, description="The model the check used."
    )
    latency_ms: int | None = Field(default=None, ge=0, description="Time the check took.")
    ttft_ms: int | None = Field(default=None, ge=0, description="Time to the first token.")
    message: Annotated[str, StringConstraints(max_length=512)] = Field(
        default="", description="What failed, or why it was skipped; never contains secrets."
    )


class SelfTestStatus(ApiModel):
    """The last run of the provider test suite (annotation signalbox.dev/self-test=run)."""

    time: datetime = Field(description="When the suite ran, or started to.")
    passed: bool | None = Field(
        default=None, description="Whether no check failed; absent while the suite runs."
    )
    trigger: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None,
        description="The annotation value this run answered; cleared when the annotation goes, "
        "so setting it again runs the suite again.",
    )
    checks: list[SelfTestCheck] = Field(
        default_factory=list, max_length=16, description="Each check, in the order run."
    )


class HealthWindow(ApiModel):
    """Probe figures over one window (the last hour or day)."""

    success_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of successful probes, 0 to 1."
    )
    uptime: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of the observed time the provider answered its probes, 0 to 1.",
    )
    probes: int = Field(default=0, ge=0, description="Probes sent in the window.")


class HealthStatus(ApiModel):
    """What the probes observed."""

    last_probe_time: datetime | None = Field(default=None, description="Time of the last probe.")
    last_success_time: datetime | None = Field(
        default=None, description="Time of the last successful probe."
    )
    latency_ms: int | None = Field(default=None, ge=0, description="Latency of the last probe.")
    success_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of successful recent probes, 0 to 1."
    )
    latency: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, description="Latency of the last probe with its unit (`42ms`, `1.3s`)."
    )
    last_hour: HealthWindow | None = Field(
        default=None, description="Success rate and uptime over the last hour."
    )
    last_day: HealthWindow | None = Field(
        default=None, description="Success rate and uptime over the last day."
    )
    last_error: ProbeError | None = Field(default=None, description="The last failed probe.")


class EndpointCounts(ApiModel):
    """Ready and total pod endpoints of an in-cluster Service."""

    ready: int = Field(ge=0, description="Endpoints ready to serve.")
    total: int = Field(ge=0, description="All endpoints.")


class ObservedModel(ApiModel):
    """A model the provider was seen to serve."""

    name: ModelName = Field(description="Model name.")
    declared: bool = Field(default=False, description="Whether spec.models declares it.")
    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=16,
        description="Capabilities the provider reports for the model (the spec's win).",
    )
    context_window: int | None = Field(
        default=None, ge=1, description="Context window in tokens, as the provider reports it."
    )


class LLMProviderStatus(ApiModel):
    """The observed state of an LLMProvider, written by the operator only."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Accepted, ResolvedRefs, Healthy, Available and the summary Ready.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    circuit: CircuitStatus | None = Field(default=None, description="Circuit-breaker state.")
    health: HealthStatus | None = Field(default=None, description="Probe results.")
    endpoint: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="The resolved base URL (the first ready pod for services)."
    )
    endpoints: EndpointCounts | None = Field(
        default=None, description="Ready and total endpoints of an in-cluster Service."
    )
    models: list[ObservedModel] = Field(
        default_factory=list,
        max_length=1024,
        description="Models seen in discovery, plus the declared ones.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    model_summary: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="The first few model names, for kubectl get -o wide."
    )
    self_test: SelfTestStatus | None = Field(
        default=None, description="The last run of the provider test suite."
    )
    capability_summary: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None,
        description="Context windows and capabilities the first models report, for -o wide.",
    )


class LLMProvider(ApiModel):
    """An LLM endpoint: OpenAI, Anthropic, Azure OpenAI, Ollama, vLLM, LocalAI or any
    OpenAI-compatible API, external or in-cluster, with its health, limits and prices."""

    spec: LLMProviderSpec = Field(description="Desired state.")
    status: LLMProviderStatus = Field(
        default_factory=LLMProviderStatus, description="Observed state."
    )
