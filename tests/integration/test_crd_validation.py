"""The CRDs on the real API server: every invalid manifest is rejected with a message that names
the field, and every valid one (the samples included) is accepted."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cluster import REPO, Cluster

Manifest = dict[str, Any]


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


INVALID: list[tuple[str, Manifest, list[str]]] = [
    (
        "url-and-service",
        provider(endpoint={"url": "https://x.example", "service": {"name": "svc", "port": 80}}),
        ["spec.endpoint", "exactly one of spec.endpoint.url or spec.endpoint.service"],
    ),
    (
        "no-endpoint",
        provider(endpoint={}),
        ["exactly one of spec.endpoint.url or spec.endpoint.service"],
    ),
    (
        "cloud-without-auth",
        edit(provider(), _drop("spec.auth")),
        ["spec.auth", "spec.auth.secretRef is required for type OpenAI"],
    ),
    (
        "anthropic-without-auth",
        edit(provider(type="Anthropic"), _drop("spec.auth")),
        ["spec.auth.secretRef is required"],
    ),
    (
        "url-not-http",
        provider(endpoint={"url": "ftp://files.example/v1"}),
        ["spec.endpoint.url", "must be an absolute http or https URL"],
    ),
    ("unknown-type", provider(type="Gemini"), ["spec.type", 'Unsupported value: "Gemini"']),
    (
        "negative-requests-per-minute",
        provider(rateLimit={"requestsPerMinute": -5}),
        ["spec.rateLimit.requestsPerMinute", "greater than or equal to 1"],
    ),
    (
        "absurd-tokens-per-minute",
        provider(rateLimit={"tokensPerMinute": 10**12}),
        ["spec.rateLimit.tokensPerMinute", "less than or equal to"],
    ),
    (
        "zero-concurrency",
        provider(rateLimit={"maxConcurrency": 0}),
        ["spec.rateLimit.maxConcurrency", "greater than or equal to 1"],
    ),
    (
        "empty-rate-limit",
        provider(rateLimit={"algorithm": "FixedWindow"}),
        ["spec.rateLimit", "needs at least one of requestsPerMinute"],
    ),
    (
        "unknown-rate-limit-algorithm",
        provider(rateLimit={"burst": 5, "maxConcurrency": 1, "algorithm": "LeakyBucket"}),
        ["spec.rateLimit.algorithm", 'Unsupported value: "LeakyBucket"'],
    ),
    (
        "interval-not-a-duration",
        provider(healthCheck={"interval": "5 minutes"}),
        ["spec.healthCheck.interval", "should match"],
    ),
    (
        "interval-zero",
        provider(healthCheck={"interval": "0s"}),
        ["spec.healthCheck.interval must be between 1s and 1h"],
    ),
    (
        "interval-too-long",
        provider(healthCheck={"interval": "2h"}),
        ["spec.healthCheck.interval must be between 1s and 1h"],
    ),
    (
        "timeout-longer-than-interval",
        provider(healthCheck={"interval": "5s", "timeout": "10s"}),
        ["spec.healthCheck.timeout must not exceed spec.healthCheck.interval"],
    ),
    (
        "chat-probe-without-model",
        provider(healthCheck={"mode": "ChatProbe"}),
        ["spec.healthCheck.probeModel is required when mode is ChatProbe"],
    ),
    (
        "http-get-without-path",
        provider(healthCheck={"mode": "HTTPGet"}),
        ["spec.healthCheck.path is required when mode is HTTPGet"],
    ),
    (
        "threshold-out-of-range",
        provider(healthCheck={"unhealthyThreshold": 50}),
        ["spec.healthCheck.unhealthyThreshold", "less than or equal to 10"],
    ),
    (
        "cost-with-dollar-sign",
        provider(models=[{"name": "m", "cost": {"inputPerMTok": "$2.50", "outputPerMTok": "1"}}]),
        ["spec.models[0].cost.inputPerMTok", "should match"],
    ),
    (
        "negative-cost",
        provider(models=[{"name": "m", "cost": {"inputPerMTok": "1", "outputPerMTok": "-1"}}]),
        ["spec.models[0].cost.outputPerMTok", "should match"],
    ),
    (
        "lowercase-currency",
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
    (
        "unknown-capability",
        provider(models=[{"name": "m", "capabilities": ["telepathy"]}]),
        ["spec.models[0].capabilities[0]", 'Unsupported value: "telepathy"'],
    ),
    (
        "too-many-models",
        provider(models=[{"name": f"m{i}"} for i in range(65)]),
        ["spec.models", "must have at most 64 items"],
    ),
    (
        "duplicate-model-names",
        edit(provider(), _two_models_same_name),
        ["spec.models[1]", "Duplicate value"],
    ),
    (
        "over-long-model-name",
        provider(models=[{"name": "m" * 300}]),
        ["spec.models[0].name", "Too long"],
    ),
    (
        "output-beyond-context",
        provider(models=[{"name": "m", "contextWindow": 1000, "maxOutputTokens": 4000}]),
        ["spec.models[0]", "maxOutputTokens must not exceed contextWindow"],
    ),
    (
        "over-long-provider-name",
        edit(provider(), _set_meta_name("p" * 64)),
        ["metadata.name must be at most 63 characters"],
    ),
    (
        "service-port-out-of-range",
        provider(type="VLLM", endpoint={"service": {"name": "vllm", "port": 70000}}),
        ["spec.endpoint.service.port", "less than or equal to 65535"],
    ),
    (
        "service-bad-scheme",
        provider(type="VLLM", endpoint={"service": {"name": "vllm", "port": 80, "scheme": "ftp"}}),
        ["spec.endpoint.service.scheme", 'Unsupported value: "ftp"'],
    ),
    (
        "max-open-shorter-than-open",
        provider(circuitBreaker={"openDuration": "5m", "maxOpenDuration": "1m"}),
        ["spec.circuitBreaker.maxOpenDuration must be at least openDuration"],
    ),
    (
        "azure-settings-on-openai",
        provider(azure={"apiVersion": "2024-10-21"}),
        ["spec.azure is only valid for type AzureOpenAI"],
    ),
    (
        "priority-out-of-range",
        provider(priority=5000),
        ["spec.priority", "less than or equal to 1000"],
    ),
    (
        "header-with-space",
        provider(auth={"secretRef": {"name": "creds", "key": "k"}, "header": "X Api Key"}),
        ["spec.auth.header", "should match"],
    ),
    (
        "unknown-strategy",
        policy(strategy="Random"),
        ["spec.strategy", 'Unsupported value: "Random"'],
    ),
    (
        "weights-on-some-providers",
        policy(providers=[{"name": "a", "weight": 3}, {"name": "b"}]),
        ["spec.providers", "weight must be set on every provider or on none"],
    ),
    (
        "selector-and-list",
        policy(providerSelector={"matchLabels": {"tier": "cloud"}}),
        ["exactly one of spec.providers or spec.providerSelector must be set"],
    ),
    (
        "neither-selector-nor-list",
        edit(policy(), _drop("spec.providers")),
        ["exactly one of spec.providers or spec.providerSelector must be set"],
    ),
    ("no-models", policy(models=[]), ["spec.models", "should have at least 1 items"]),
    ("model-glob-with-space", policy(models=["chat default"]), ["spec.models[0]", "should match"]),
    (
        "duplicate-policy-providers",
        policy(providers=[{"name": "a"}, {"name": "a"}]),
        ["spec.providers[1]", "Duplicate value"],
    ),
    (
        "unknown-retry-class",
        policy(failover={"retryOn": ["Timeout", "Always"]}),
        ["spec.failover.retryOn[1]", 'Unsupported value: "Always"'],
    ),
    (
        "zero-attempts",
        policy(failover={"maxAttempts": 0}),
        ["spec.failover.maxAttempts", "greater than or equal to 1"],
    ),
    (
        "backoff-max-below-base",
        policy(failover={"backoff": {"base": "5s", "max": "1s"}}),
        ["spec.failover.backoff.max must be at least base"],
    ),
    (
        "selector-in-without-values",
        edit(
            policy(providerSelector={"matchExpressions": [{"key": "tier", "operator": "In"}]}),
            _drop("spec.providers"),
        ),
        ["values must be non-empty for In and NotIn"],
    ),
    (
        "unknown-tier",
        policy(requirements={"tiers": ["Edge"]}),
        ["spec.requirements.tiers[0]", 'Unsupported value: "Edge"'],
    ),
]


def test_valid_bases_are_accepted(cluster: Cluster, namespace: str) -> None:
    # Each invalid case differs from one of these by the one change it names.
    cluster.apply(provider(), namespace)
    cluster.apply(policy(), namespace)
    got = cluster.get("llmprovider", "p", namespace)
    assert got["spec"]["healthCheck"]["interval"] == "30s", "schema defaults were applied"
    assert got["spec"]["circuitBreaker"]["failureThreshold"] == 3
    assert cluster.get("routingpolicy", "rp", namespace)["spec"]["strategy"] == "Priority"


@pytest.mark.parametrize(
    ("manifest", "expected"), [(m, e) for _, m, e in INVALID], ids=[case for case, _, _ in INVALID]
)
def test_invalid_manifest_is_rejected(
    cluster: Cluster, namespace: str, manifest: Manifest, expected: list[str]
) -> None:
    import yaml

    proc = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    assert proc.returncode != 0, f"accepted an invalid manifest: {manifest}"
    assert "is invalid" in proc.stderr
    for text in expected:
        assert text in proc.stderr


def test_type_is_immutable(cluster: Cluster, namespace: str) -> None:
    cluster.apply(provider(), namespace)
    changed = provider(type="OpenAICompatible")
    import yaml

    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(changed), check=False
    )
    assert proc.returncode != 0
    assert "spec.type is immutable" in proc.stderr
    assert cluster.get("llmprovider", "p", namespace)["spec"]["type"] == "OpenAI"


def test_samples_apply_cleanly_and_show_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "crds" / "samples"))
    llm = cluster.kubectl("get", "llm", "-n", namespace).stdout
    for name in (
        "openai",
        "anthropic",
        "ollama-local",
        "vllm-llama",
        "openrouter",
        "chat-default",
        "cheap-cloud",
    ):
        assert name in llm
    providers = cluster.kubectl("get", "llmp", "-n", namespace).stdout.splitlines()
    assert providers[0].split() == ["NAME", "TYPE", "READY", "CIRCUIT", "PRIORITY", "REASON", "AGE"]
    assert len(providers) == 6
    wide = cluster.kubectl("get", "llmp", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert wide.split()[-3:] == ["ENDPOINT", "LATENCY", "MODELS"]
    policies = cluster.kubectl("get", "llmrp", "-n", namespace).stdout.splitlines()
    assert policies[0].split() == ["NAME", "STRATEGY", "ACTIVE", "ELIGIBLE", "READY", "AGE"]


def test_printer_columns_read_conditions_by_type(cluster: Cluster, namespace: str) -> None:
    cluster.apply(provider(), namespace)
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Healthy",
                    "status": "False",
                    "reason": "ProbeFailed",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CircuitOpen",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
            ],
            "circuit": {"state": "Open"},
            "modelSummary": "gpt-4o-mini",
        }
    }
    import json

    cluster.kubectl(
        "patch",
        "llmp",
        "p",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    row = cluster.kubectl(
        "get", "llmp", "p", "-n", namespace, "-o", "wide", "--no-headers"
    ).stdout.split()
    assert row[:6] == ["p", "OpenAI", "False", "Open", "100", "CircuitOpen"]
    assert row[-1] == "gpt-4o-mini"


def test_explain_teaches_the_fields(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "llmprovider.spec.healthCheck").stdout
    assert "ListModels" in out
    assert "interval" in out
    assert "Consecutive failures" in out
    policy_out = cluster.kubectl("explain", "routingpolicy.spec.failover").stdout
    assert "retryOn" in policy_out
