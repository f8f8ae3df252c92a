"""Invalid LLMProvider and RoutingPolicy manifests, each with the field it gets wrong.

One table for two judges: ``tests/controlplane/test_crd_validation.py`` sends every case to the real
API server and ``tests/unit/signalbox_api/test_admission.py`` to
``signalbox_api.admission.validate`` (what manifests mode applies); both must refuse each case
naming the same field (empty for the object as a whole) with the expected words. Each case differs
from :func:`provider` or :func:`policy` by the one change its name says.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """An invalid manifest, the field the API server names, and words its message contains."""

    name: str
    field: str
    manifest: Manifest
    expected: list[str]


def provider(**spec: Any) -> Manifest:
    base: Manifest = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": "p"},
        "spec": {
            "type": "OpenAI",
            "endpoint": {"url": "https://api.example.com/v1"},
            "auth": {"secretRef": {"name": "creds", "key": "api-key"}},
            "models": [{"name": "gpt-4o-mini", "contextWindow": 128000}],
        },
    }
    base["spec"].update(spec)
    return base


def policy(**spec: Any) -> Manifest:
    base: Manifest = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "rp"},
        "spec": {"models": ["chat-default"], "providers": [{"name": "a"}, {"name": "b"}]},
    }
    base["spec"].update(spec)
    return base


def edit(base: Manifest, change: Callable[[Manifest], None]) -> Manifest:
    out = copy.deepcopy(base)
    change(out)
    return out


def _drop(path: str) -> Callable[[Manifest], None]:
    def change(m: Manifest) -> None:
        *parents, last = path.split(".")
        node = m
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _set_meta_name(name: str) -> Callable[[Manifest], None]:
    def change(m: Manifest) -> None:
        m["metadata"]["name"] = name

    return change


def _two_models_same_name(m: Manifest) -> None:
    m["spec"]["models"] = [{"name": "gpt-4o"}, {"name": "gpt-4o"}]


INVALID: list[Case] = [
    Case(
        "url-and-service",
        "spec.endpoint",
        provider(endpoint={"url": "https://x.example", "service": {"name": "svc", "port": 80}}),
        ["spec.endpoint", "exactly one of spec.endpoint.url or spec.endpoint.service"],
    ),
    Case(
        "no-endpoint",
        "spec.endpoint",
        provider(endpoint={}),
        ["exactly one of spec.endpoint.url or spec.endpoint.service"],
    ),
    Case(
        "cloud-without-auth",
        "spec.auth",
        edit(provider(), _drop("spec.auth")),
        ["spec.auth", "spec.auth.secretRef is required for type OpenAI"],
    ),
    Case(
        "anthropic-without-auth",
        "spec.auth",
        edit(provider(type="Anthropic"), _drop("spec.auth")),
        ["spec.auth.secretRef is required"],
    ),
    Case(
        "url-not-http",
        "spec.endpoint.url",
        provider(endpoint={"url": "ftp://files.example/v1"}),
        ["spec.endpoint.url", "must be an absolute http or https URL"],
    ),
    Case(
        "url-with-query",
        "spec.endpoint.url",
        provider(endpoint={"url": "https://gw.example/v1?tenant=a"}),
        ["spec.endpoint.url", "must not carry a query or a fragment"],
    ),
    Case(
        "unknown-type",
        "spec.type",
        provider(type="Gemini"),
        ["spec.type", 'Unsupported value: "Gemini"'],
    ),
    Case(
        "negative-requests-per-minute",
        "spec.rateLimit.requestsPerMinute",
        provider(rateLimit={"requestsPerMinute": -5}),
        ["spec.rateLimit.requestsPerMinute", "greater than or equal to 1"],
    ),
    Case(
        "absurd-tokens-per-minute",
        "spec.rateLimit.tokensPerMinute",
        provider(rateLimit={"tokensPerMinute": 10**12}),
        ["spec.rateLimit.tokensPerMinute", "less than or equal to"],
    ),
    Case(
        "zero-concurrency",
        "spec.rateLimit.maxConcurrency",
        provider(rateLimit={"maxConcurrency": 0}),
        ["spec.rateLimit.maxConcurrency", "greater than or equal to 1"],
    ),
    Case(
        "empty-rate-limit",
        "spec.rateLimit",
        provider(rateLimit={"algorithm": "FixedWindow"}),
        ["spec.rateLimit", "needs at least one of requestsPerMinute"],
    ),
    Case(
        "unknown-rate-limit-algorithm",
        "spec.rateLimit.algorithm",
        provider(rateLimit={"burst": 5, "maxConcurrency": 1, "algorithm": "LeakyBucket"}),
        ["spec.rateLimit.algorithm", 'Unsupported value: "LeakyBucket"'],
    ),
    Case(
        "interval-not-a-duration",
        "spec.healthCheck.interval",
        provider(healthCheck={"interval": "5 minutes"}),
        ["spec.healthCheck.interval", "should match"],
    ),
    Case(
        "interval-zero",
        "spec.healthCheck.interval",
        provider(healthCheck={"interval": "0s"}),
        ["spec.healthCheck.interval must be between 1s and 1h"],
    ),
    Case(
        "interval-too-long",
        "spec.healthCheck.interval",
        provider(healthCheck={"interval": "2h"}),
        ["spec.healthCheck.interval must be between 1s and 1h"],
    ),
    Case(
        "timeout-longer-than-interval",
        "spec.healthCheck",
        provider(healthCheck={"interval": "5s", "timeout": "10s"}),
        ["spec.healthCheck.timeout must not exceed spec.healthCheck.interval"],
    ),
    Case(
        "chat-probe-without-model",
        "spec.healthCheck",
        provider(healthCheck={"mode": "ChatProbe"}),
        ["spec.healthCheck.probeModel is required when mode is ChatProbe"],
    ),
    Case(
        "http-get-without-path",
        "spec.healthCheck",
        provider(healthCheck={"mode": "HTTPGet"}),
        ["spec.healthCheck.path is required when mode is HTTPGet"],
    ),
    Case(
        "threshold-out-of-range",
        "spec.healthCheck.unhealthyThreshold",
        provider(healthCheck={"unhealthyThreshold": 50}),
        ["spec.healthCheck.unhealthyThreshold", "less than or equal to 10"],
    ),
    Case(
        "cost-with-dollar-sign",
        "spec.models[0].cost.inputPerMTok",
        provider(models=[{"name": "m", "cost": {"inputPerMTok": "$2.50", "outputPerMTok": "1"}}]),
        ["spec.models[0].cost.inputPerMTok", "should match"],
    ),
    Case(
        "negative-cost",
        "spec.models[0].cost.outputPerMTok",
        provider(models=[{"name": "m", "cost": {"inputPerMTok": "1", "outputPerMTok": "-1"}}]),
        ["spec.models[0].cost.outputPerMTok", "should match"],
    ),
    Case(
        "lowercase-currency",
        "spec.models[0].cost.currency",
        provider(
            models=[
                {
                    "name": "m",
                    "cost": {"inputPerMTok": "1", "outputPerMTok": "1", "currency": "usd"},
                }
            ]
        ),
        ["spec.models[0].cost.currency", "should match"],
    ),
    Case(
        "unknown-capability",
        "spec.models[0].capabilities[0]",
        provider(models=[{"name": "m", "capabilities": ["telepathy"]}]),
        ["spec.models[0].capabilities[0]", 'Unsupported value: "telepathy"'],
    ),
    Case(
        "too-many-models",
        "spec.models",
        provider(models=[{"name": f"m{i}"} for i in range(65)]),
        ["spec.models", "must have at most 64 items"],
    ),
    Case(
        "duplicate-model-names",
        "spec.models[1]",
        edit(provider(), _two_models_same_name),
        ["spec.models[1]", "Duplicate value"],
    ),
    Case(
        "over-long-model-name",
        "spec.models[0].name",
        provider(models=[{"name": "m" * 300}]),
        ["spec.models[0].name", "Too long"],
    ),
    Case(
        "output-beyond-context",
        "spec.models[0]",
        provider(models=[{"name": "m", "contextWindow": 1000, "maxOutputTokens": 4000}]),
        ["spec.models[0]", "maxOutputTokens must not exceed contextWindow"],
    ),
    Case(
        "over-long-provider-name",
        "",
        edit(provider(), _set_meta_name("p" * 64)),
        ["metadata.name must be at most 63 characters"],
    ),
    Case(
        "service-port-out-of-range",
        "spec.endpoint.service.port",
        provider(type="VLLM", endpoint={"service": {"name": "vllm", "port": 70000}}),
        ["spec.endpoint.service.port", "less than or equal to 65535"],
    ),
    Case(
        "service-bad-scheme",
        "spec.endpoint.service.scheme",
        provider(type="VLLM", endpoint={"service": {"name": "vllm", "port": 80, "scheme": "ftp"}}),
        ["spec.endpoint.service.scheme", 'Unsupported value: "ftp"'],
    ),
    Case(
        "max-open-shorter-than-open",
        "spec.circuitBreaker",
        provider(circuitBreaker={"openDuration": "5m", "maxOpenDuration": "1m"}),
        ["spec.circuitBreaker.maxOpenDuration must be at least openDuration"],
    ),
    Case(
        "azure-settings-on-openai",
        "spec.azure",
        provider(azure={"apiVersion": "2024-10-21"}),
        ["spec.azure is only valid for type AzureOpenAI"],
    ),
    Case(
        "priority-out-of-range",
        "spec.priority",
        provider(priority=5000),
        ["spec.priority", "less than or equal to 1000"],
    ),
    Case(
        "header-with-space",
        "spec.auth.header",
        provider(auth={"secretRef": {"name": "creds", "key": "k"}, "header": "X Api Key"}),
        ["spec.auth.header", "should match"],
    ),
    Case(
        "unknown-strategy",
        "spec.strategy",
        policy(strategy="Random"),
        ["spec.strategy", 'Unsupported value: "Random"'],
    ),
    Case(
        "weights-on-some-providers",
        "spec.providers",
        policy(providers=[{"name": "a", "weight": 3}, {"name": "b"}]),
        ["spec.providers", "weight must be set on every provider or on none"],
    ),
    Case(
        "selector-and-list",
        "spec",
        policy(providerSelector={"matchLabels": {"tier": "cloud"}}),
        ["exactly one of spec.providers or spec.providerSelector must be set"],
    ),
    Case(
        "neither-selector-nor-list",
        "spec",
        edit(policy(), _drop("spec.providers")),
        ["exactly one of spec.providers or spec.providerSelector must be set"],
    ),
    Case(
        "no-models",
        "spec.models",
        policy(models=[]),
        ["spec.models", "should have at least 1 items"],
    ),
    Case(
        "model-glob-with-space",
        "spec.models[0]",
        policy(models=["chat default"]),
        ["spec.models[0]", "should match"],
    ),
    Case(
        "duplicate-policy-providers",
        "spec.providers[1]",
        policy(providers=[{"name": "a"}, {"name": "a"}]),
        ["spec.providers[1]", "Duplicate value"],
    ),
    Case(
        "unknown-retry-class",
        "spec.failover.retryOn[1]",
        policy(failover={"retryOn": ["Timeout", "Always"]}),
        ["spec.failover.retryOn[1]", 'Unsupported value: "Always"'],
    ),
    Case(
        "zero-attempts",
        "spec.failover.maxAttempts",
        policy(failover={"maxAttempts": 0}),
        ["spec.failover.maxAttempts", "greater than or equal to 1"],
    ),
    Case(
        "backoff-max-below-base",
        "spec.failover.backoff",
        policy(failover={"backoff": {"base": "5s", "max": "1s"}}),
        ["spec.failover.backoff.max must be at least base"],
    ),
    Case(
        "selector-in-without-values",
        "spec.providerSelector.matchExpressions[0]",
        edit(
            policy(providerSelector={"matchExpressions": [{"key": "tier", "operator": "In"}]}),
            _drop("spec.providers"),
        ),
        ["values must be non-empty for In and NotIn"],
    ),
    Case(
        "unknown-tier",
        "spec.requirements.tiers[0]",
        policy(requirements={"tiers": ["Edge"]}),
        ["spec.requirements.tiers[0]", 'Unsupported value: "Edge"'],
    ),
]
