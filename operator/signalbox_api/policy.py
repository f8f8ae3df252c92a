"""RoutingPolicy: which providers serve which model names, in what order, and how to fail over.

``spec`` is declared by a platform team; ``status`` is written only by the operator.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from signalbox_api.conditions import Condition
from signalbox_api.primitives import ApiModel, DNSSubdomain, Duration, ModelName, parse_duration
from signalbox_api.provider import Capability, Tier
from signalbox_api.validation import cel, duration_between, has, rules


class Strategy(enum.StrEnum):
    PRIORITY = "Priority"
    ROUND_ROBIN = "RoundRobin"
    WEIGHTED = "Weighted"
    HEALTH_BASED = "HealthBased"
    LEAST_RECENTLY_USED = "LeastRecentlyUsed"
    LEAST_LOADED = "LeastLoaded"
    LOWEST_COST = "LowestCost"


class RetryOn(enum.StrEnum):
    CONNECT_FAILURE = "ConnectFailure"
    TIMEOUT = "Timeout"
    SERVER_ERROR = "ServerError"
    RATE_LIMITED = "RateLimited"


class SelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


ModelPattern = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9*?\[\]._:/@+-]+$", min_length=1, max_length=253)
]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]


class ProviderRef(ApiModel):
    """A provider this policy may use, with optional overrides."""

    name: DNSSubdomain = Field(description="Name of an LLMProvider in the policy's namespace.")
    priority: int | None = Field(
        default=None, ge=0, le=1000, description="Overrides the provider's own priority."
    )
    weight: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Share of load under the Weighted strategy; set on all providers or none.",
    )
    model: ModelName | None = Field(
        default=None, description="Upstream model to request from this provider."
    )


class SelectorRequirement(ApiModel):
    """A label selector requirement, as in Kubernetes label selectors."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                check=lambda self: (
                    (self["operator"] in ("In", "NotIn")) == bool(self.get("values"))
                ),
            )
        )
    }

    key: LabelKey = Field(description="Label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[LabelValue] | None = Field(
        default=None, max_length=64, description="Label values for In and NotIn."
    )


class LabelSelector(ApiModel):
    """Selects LLMProviders in the policy's namespace by label."""

    match_labels: dict[LabelKey, LabelValue] | None = Field(
        default=None, description="Labels a provider must have, all of them."
    )
    match_expressions: list[SelectorRequirement] | None = Field(
        default=None, max_length=16, description="Requirements a provider must meet, all of them."
    )


class Requirements(ApiModel):
    """Filters applied before the strategy orders providers."""

    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=9,
        description="Capabilities every chosen provider's model must have.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    min_context_window: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Smallest context window accepted."
    )
    tiers: list[Tier] = Field(
        default_factory=list,
        max_length=2,
        description="Allowed tiers (Local, Cloud); empty allows both.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class Backoff(ApiModel):
    """Exponential back-off between attempts."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "duration(self.max) >= duration(self.base)",
                "spec.failover.backoff.max must be at least base",
                check=lambda self: parse_duration(self["max"]) >= parse_duration(self["base"]),
            )
        )
    }

    base: Duration = Field(
        default="100ms",
        description="Wait before the second attempt.",
        json_schema_extra=duration_between("0s", "1m", "spec.failover.backoff.base"),
    )
    max: Duration = Field(
        default="2s",
        description="Longest wait between attempts.",
        json_schema_extra=duration_between("0s", "5m", "spec.failover.backoff.max"),
    )


def _all_retry_classes() -> list[RetryOn]:
    return list(RetryOn)


class Failover(ApiModel):
    """Which failures move a request to the next provider."""

    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts per request, the first included. Once every provider of the "
        "request failed, one that failed transiently (a connection, a timeout, a 5xx, an "
        "invalid answer) is tried again, with back-off, until these are spent: a policy of one "
        "provider still retries. Never past a stream's first token.",
    )
    retry_on: list[RetryOn] = Field(
        default_factory=_all_retry_classes,
        max_length=4,
        description="Failure classes that fail over: ConnectFailure, Timeout, ServerError, "
        "RateLimited. 400, 404 and 422 are never retried elsewhere; a refused key (401, 403) "
        "and a spent quota (402, insufficient_quota) always move on.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    backoff: Backoff = Field(
        default_factory=Backoff,
        description="Back-off between attempts: exponential from base to max, each wait "
        "spread at random over its upper half.",
    )
    retry_after_max_wait: Duration = Field(
        default="10s",
        description="Longest Retry-After the router waits out when no other provider is left.",
        json_schema_extra=duration_between("0s", "10m", "spec.failover.retryAfterMaxWait"),
    )
    total_timeout: Duration | None = Field(
        default=None,
        description="One deadline for the whole request, across every attempt and back-off "
        "(a client's x-signalbox-timeout header may shorten it); when it passes, the client "
        "gets 504 with code total_timeout. Unset: only the providers' own timeouts apply.",
        json_schema_extra=duration_between("1s", "1h", "spec.failover.totalTimeout"),
    )


class ResponseCache(ApiModel):
    """Answers kept for repeats of the same deterministic request (``temperature: 0`` or a
    ``seed``), per client API key; shared by the router replicas when they have a Redis."""

    ttl: Duration = Field(
        default="5m",
        description="How long an answer is served from the cache.",
        json_schema_extra=duration_between("1s", "24h", "spec.cache.ttl"),
    )
    max_entries: int = Field(
        default=1000, ge=1, le=1_000_000, description="Answers each router keeps in memory."
    )
    max_entry_bytes: int = Field(
        default=65536,
        ge=256,
        le=8 * 1024 * 1024,
        description="Larger answers are not cached.",
    )


def _weights_all_or_none(self: dict[str, Any]) -> bool:
    weighted = {has(p, "weight") for p in self.get("providers") or []}
    return len(weighted) <= 1


_WEIGHTS_ALL_OR_NONE = (
    "!has(self.providers) || self.providers.all(p, has(p.weight))"
    " || self.providers.all(p, !has(p.weight))"
)


class RoutingPolicySpec(ApiModel):
    """The desired routing for a set of model names."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "has(self.providers) != has(self.providerSelector)",
                "exactly one of spec.providers or spec.providerSelector must be set",
                check=lambda self: has(self, "providers") != has(self, "providerSelector"),
            ),
            cel(
                _WEIGHTS_ALL_OR_NONE,
                "spec.providers[].weight must be set on every provider or on none",
                field_path=".providers",
                check=_weights_all_or_none,
            ),
        )
    }

    models: list[ModelPattern] = Field(
        min_length=1,
        max_length=32,
        description="Model names (exact or glob, e.g. gpt-4o* or chat-default) this policy serves.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    providers: list[ProviderRef] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Providers by name; or use providerSelector.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    provider_selector: LabelSelector | None = Field(
        default=None, description="Providers by label; or use providers."
    )
    strategy: Strategy = Field(
        default=Strategy.PRIORITY,
        description="Orders providers inside a priority group: Priority, RoundRobin, Weighted, "
        "HealthBased, LeastRecentlyUsed, LeastLoaded or LowestCost.",
    )
    requirements: Requirements | None = Field(
        default=None, description="Capabilities, context window and tiers a provider must meet."
    )
    failover: Failover = Field(default_factory=Failover, description="Failover rules.")
    cache: ResponseCache | None = Field(
        default=None, description="Cache deterministic answers (off when absent)."
    )


class PolicyProviderStatus(ApiModel):
    """Whether one provider can take traffic under this policy, and why not."""

    name: DNSSubdomain = Field(description="Name of the LLMProvider.")
    eligible: bool = Field(description="Whether the provider can take traffic now.")
    reason: str = Field(
        max_length=64,
        description="Ready, or why not: CircuitOpen, Unhealthy, Suspended, RateLimited, "
        "CapabilityMismatch or NotFound.",
    )
    priority: int = Field(ge=0, le=1000, description="Effective priority.")
    weight: int = Field(ge=0, le=1000, description="Effective weight.")


class RoutingPolicyStatus(ApiModel):
    """The observed state of a RoutingPolicy, written by the operator only."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Accepted, ResolvedRefs, Ready and Degraded.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    providers: list[PolicyProviderStatus] = Field(
        default_factory=list,
        max_length=256,
        description="Every resolved provider with its eligibility.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    active_provider: DNSSubdomain | None = Field(
        default=None, description="The provider a request would go to first now."
    )
    eligible: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, description="Eligible over resolved providers, e.g. 2/3."
    )


class RoutingPolicy(ApiModel):
    """Routes requests for a set of model names to LLMProviders, with a strategy, requirements
    and failover rules."""

    spec: RoutingPolicySpec = Field(description="Desired state.")
    status: RoutingPolicyStatus = Field(
        default_factory=RoutingPolicyStatus, description="Observed state."
    )
