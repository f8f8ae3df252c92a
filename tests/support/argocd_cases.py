"""The table of LLMProvider and RoutingPolicy objects the Argo CD health checks are tested on.

One table, two engines: tests/unit/hack/test_argocd_health.py runs it through Lua 5.1 (lupa, fast),
tests/controlplane/test_argocd_engine.py through gopher-lua set up as Argo CD sets it up.
"""

from __future__ import annotations

from typing import Any


def cond(type_: str, status: str, reason: str = "Reason", message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": 3,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }


def provider(
    status: dict[str, Any] | None,
    *,
    generation: int | str | None = 3,
    suspend: bool | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "OpenAI", "endpoint": {"url": "https://api.openai.com/v1"}}
    if suspend is not None:
        spec["suspend"] = suspend
    obj: dict[str, Any] = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": "openai", "namespace": "llm", "generation": generation},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def policy(status: dict[str, Any] | None, *, generation: int = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "chat", "namespace": "llm", "generation": generation},
        "spec": {"models": ["gpt-4o"], "providers": [{"name": "a"}, {"name": "b"}]},
    }
    if status is not None:
        obj["status"] = status
    return obj


def p_status(*conditions: dict[str, Any], observed: int | None = 3, **extra: Any) -> dict[str, Any]:
    return {"observedGeneration": observed, "conditions": list(conditions), **extra}


PROVIDER_READY = (
    cond("Accepted", "True", "Valid"),
    cond("ResolvedRefs", "True", "Resolved"),
    cond("Healthy", "True", "ProbeSucceeded"),
    cond("Available", "True", "Ready"),
    cond("Ready", "True", "Ready"),
)
CLOSED = {"state": "Closed", "consecutiveFailures": 0, "trips": 0}

POLICY_READY = (
    cond("Accepted", "True", "Valid"),
    cond("ResolvedRefs", "True", "Resolved", "2 provider(s)"),
    cond("Ready", "True", "Ready", "2 eligible provider(s)"),
    cond("Degraded", "False", "AllProvidersEligible"),
)


def _ab(eligible: bool, reason: str) -> list[dict[str, Any]]:
    return [
        {"name": "a", "eligible": eligible, "reason": reason, "priority": 10, "weight": 1},
        {"name": "b", "eligible": False, "reason": "CircuitOpen", "priority": 20, "weight": 1},
    ]


# (id, kind, object, expected status, substrings the message must contain)
CASES: list[tuple[str, str, dict[str, Any], str, tuple[str, ...]]] = [
    # LLMProvider
    ("provider-no-status", "LLMProvider", provider(None), "Progressing", ("operator",)),
    ("provider-empty-status", "LLMProvider", provider({}), "Progressing", ("operator",)),
    (
        "provider-empty-conditions",
        "LLMProvider",
        provider(p_status()),
        "Progressing",
        ("waiting for the operator",),
    ),
    (
        "provider-no-observed-generation",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=None, circuit=CLOSED)),
        "Progressing",
        ("generation 3",),
    ),
    (
        "provider-stale-generation",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=2, circuit=CLOSED), generation=3),
        "Progressing",
        ("generation 3",),
    ),
    (
        "provider-newer-observed-generation",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=4, circuit=CLOSED), generation=3),
        "Healthy",
        ("ready",),
    ),
    (
        "provider-generation-as-string",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=2, circuit=CLOSED), generation="3"),
        "Progressing",
        ("generation 3",),
    ),
    (
        "provider-no-metadata-generation",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=1, circuit=CLOSED), generation=None),
        "Healthy",
        (),
    ),
    (
        "provider-suspended",
        "LLMProvider",
        provider(
            p_status(
                cond("Accepted", "True", "Valid"),
                cond("Ready", "False", "Suspended", "spec.suspend is true"),
            ),
            suspend=True,
        ),
        "Suspended",
        ("spec.suspend",),
    ),
    (
        "provider-suspended-but-stale",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, observed=2), suspend=True),
        "Progressing",
        ("generation 3",),
    ),
    (
        "provider-suspend-false-is-ignored",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, circuit=CLOSED), suspend=False),
        "Healthy",
        ("circuit Closed",),
    ),
    (
        "provider-not-accepted",
        "LLMProvider",
        provider(
            p_status(
                cond("Accepted", "False", "InvalidSpec", "spec.models[0].name is empty"),
                cond("Ready", "Unknown", "InvalidSpec", "the spec was not accepted"),
            )
        ),
        "Degraded",
        ("InvalidSpec", "spec.models[0].name is empty"),
    ),
    (
        "provider-ready-closed",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, circuit=CLOSED)),
        "Healthy",
        ("ready", "circuit Closed"),
    ),
    (
        "provider-ready-half-open",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY, circuit={"state": "HalfOpen"})),
        "Healthy",
        ("circuit HalfOpen",),
    ),
    (
        "provider-ready-no-circuit",
        "LLMProvider",
        provider(p_status(*PROVIDER_READY)),
        "Healthy",
        ("ready",),
    ),
    (
        "provider-ready-conditions-reversed",
        "LLMProvider",
        provider(p_status(*reversed(PROVIDER_READY), circuit=CLOSED)),
        "Healthy",
        ("circuit Closed",),
    ),
    (
        "provider-circuit-open",
        "LLMProvider",
        provider(
            p_status(
                cond("Ready", "False", "CircuitOpen", "the circuit is open"),
                cond("Accepted", "True", "Valid"),
                cond("Healthy", "False", "Timeout", "probe timed out"),
                circuit={"state": "Open", "trips": 2},
            )
        ),
        "Degraded",
        ("CircuitOpen: the circuit is open", "circuit Open"),
    ),
    (
        "provider-secret-missing",
        "LLMProvider",
        provider(
            p_status(
                cond("Accepted", "True", "Valid"),
                cond("ResolvedRefs", "False", "SecretNotFound", "secret llm/openai not found"),
                cond("Ready", "False", "SecretNotFound", "secret llm/openai not found"),
            )
        ),
        "Degraded",
        ("SecretNotFound", "secret llm/openai not found"),
    ),
    (
        "provider-first-probe-pending",
        "LLMProvider",
        provider(
            p_status(
                cond("Accepted", "True", "Valid"),
                cond("Ready", "Unknown", "Pending", "waiting for the first probe"),
            )
        ),
        "Progressing",
        ("Pending: waiting for the first probe",),
    ),
    (
        "provider-no-ready-condition",
        "LLMProvider",
        provider(p_status(cond("Accepted", "True", "Valid"))),
        "Progressing",
        ("Ready",),
    ),
    (
        "provider-odd-ready-status",
        "LLMProvider",
        provider(p_status(cond("Ready", "Maybe"))),
        "Unknown",
        ("Maybe",),
    ),
    # RoutingPolicy
    ("policy-no-status", "RoutingPolicy", policy(None), "Progressing", ("operator",)),
    (
        "policy-empty-conditions",
        "RoutingPolicy",
        policy(p_status(eligible="0/0")),
        "Progressing",
        ("waiting for the operator",),
    ),
    (
        "policy-stale-generation",
        "RoutingPolicy",
        policy(p_status(*POLICY_READY, observed=1), generation=2),
        "Progressing",
        ("generation 2",),
    ),
    (
        "policy-suspend-is-not-a-policy-field",
        "RoutingPolicy",
        {**policy(p_status(*POLICY_READY)), "spec": {"suspend": True, "models": ["x"]}},
        "Healthy",
        ("ready",),
    ),
    (
        "policy-not-accepted",
        "RoutingPolicy",
        policy(
            p_status(
                cond("Accepted", "False", "InvalidSpec", "weights must be set on all or none"),
                cond("Ready", "False", "NoEligibleProviders", "no provider can take traffic"),
            )
        ),
        "Degraded",
        ("weights must be set on all or none",),
    ),
    (
        "policy-ready",
        "RoutingPolicy",
        policy(
            p_status(
                *POLICY_READY, eligible="2/2", activeProvider="a", providers=_ab(True, "Ready")
            )
        ),
        "Healthy",
        ("ready", "2/2 eligible", "active a"),
    ),
    (
        "policy-failing-over",
        "RoutingPolicy",
        policy(
            p_status(
                cond("Degraded", "True", "FailingOver", "out: b (CircuitOpen)"),
                cond("Ready", "True", "Ready", "1 eligible provider(s)"),
                cond("ResolvedRefs", "True", "Resolved", "2 provider(s)"),
                cond("Accepted", "True", "Valid"),
                eligible="1/2",
                activeProvider="a",
                providers=_ab(True, "Ready"),
            )
        ),
        "Healthy",
        ("failing over: out: b (CircuitOpen)", "1/2 eligible", "active a"),
    ),
    (
        "policy-no-eligible",
        "RoutingPolicy",
        policy(
            p_status(
                cond("Accepted", "True", "Valid"),
                cond("ResolvedRefs", "True", "Resolved", "2 provider(s)"),
                cond("Ready", "False", "NoEligibleProviders", "no provider can take traffic"),
                cond("Degraded", "False", "NoEligibleProviders"),
                eligible="0/2",
                providers=_ab(False, "Unhealthy"),
            )
        ),
        "Degraded",
        ("NoEligibleProviders: no provider can take traffic", "0/2 eligible"),
    ),
    (
        "policy-refs-not-found",
        "RoutingPolicy",
        policy(
            p_status(
                cond("Accepted", "True", "Valid"),
                cond("ResolvedRefs", "False", "NotFound", "not found: b"),
                cond("Ready", "False", "NoEligibleProviders", "no provider can take traffic"),
            )
        ),
        "Degraded",
        ("NoEligibleProviders", "; NotFound: not found: b"),
    ),
    (
        "policy-ready-unknown",
        "RoutingPolicy",
        policy(p_status(cond("Accepted", "True", "Valid"), cond("Ready", "Unknown", "Pending"))),
        "Progressing",
        ("Pending",),
    ),
    (
        "policy-no-ready-condition",
        "RoutingPolicy",
        policy(p_status(cond("Accepted", "True", "Valid"))),
        "Progressing",
        ("Ready",),
    ),
    (
        "policy-odd-ready-status",
        "RoutingPolicy",
        policy(p_status(cond("Ready", "Maybe"))),
        "Unknown",
        ("Maybe",),
    ),
]
