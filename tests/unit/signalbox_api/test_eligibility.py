"""One eligibility rule, two consumers: the same table of cases goes through the operator's
policy status (``policy_status.compute``) and the router's selection (``selection.route``, in
Kubernetes mode on the operator's provider verdicts and in manifests mode on none), and both
must say the same. Also: ``activeProvider`` is the router's first choice, and the model-name
rule that picks a policy says what a losing policy loses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pytest

from signalbox_api import conditions, eligibility
from signalbox_api.conditions import Condition, Reason
from signalbox_api.policy import RoutingPolicySpec, Strategy
from signalbox_api.provider import (
    Capability,
    CircuitState,
    CircuitStatus,
    HealthStatus,
    LLMProviderSpec,
    LLMProviderStatus,
)
from signalbox_operator import policies
from signalbox_operator.kube import ObjectRef, Render, Written
from signalbox_operator.status import policy_status
from signalbox_operator.status.policy_status import ProviderView
from signalbox_router.routing import selection
from signalbox_router.routing.selection import LocalView, Needs
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot
from signalbox_router.sources import cluster_snapshot

if TYPE_CHECKING:
    from signalbox_operator.kube import Kube

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GENERATION = 3
URL = "http://127.0.0.1:9/v1"


def status_of(kind: str) -> LLMProviderStatus:
    """A provider status as the operator writes it, in one of a few states."""
    if kind == "none":
        return LLMProviderStatus()
    ready, reason, available = "True", "Ready", "Ready"
    circuit = CircuitState.CLOSED
    observed = GENERATION
    if kind == "not-ready":
        ready, reason = "False", "ProbeFailed"
    elif kind == "stale":
        observed = GENERATION - 1
    elif kind == "circuit-open":
        ready, reason, available = "False", "ProbeFailed", "CircuitOpen"
        circuit = CircuitState.OPEN
    elif kind == "rate-limited":
        ready, reason, available = "False", "RateLimited", "RateLimited"
    conds = [
        Condition(
            type=t,
            status=s,
            reason=r,
            observed_generation=observed,
            last_transition_time=T0,
        )
        for t, s, r in (
            ("Available", "True" if available == "Ready" else "False", available),
            ("Ready", ready, reason),
        )
    ]
    return LLMProviderStatus(
        observed_generation=observed, conditions=conds, circuit=CircuitStatus(state=circuit)
    )


@dataclass(frozen=True)
class Case:
    id: str
    models: list[Any]  # the provider's declared models; None: the provider does not exist
    expected: Reason
    status: str = "ready"
    requirements: dict[str, Any] | None = None
    ref_model: str | None = None
    provider: dict[str, Any] | None = None  # more provider spec fields
    exists: bool = True


TOOLS = {"capabilities": ["tools"]}
BIG = {"name": "big", "capabilities": ["chat", "tools"], "contextWindow": 128000}
SMALL = {"name": "small", "capabilities": ["chat"], "contextWindow": 8192}
E5 = {"name": "e5", "capabilities": ["embeddings"]}

CASES = [
    Case("declared model, no requirements", ["m"], Reason.READY),
    Case("no declared capabilities, tools required", ["m"], Reason.CAPABILITY_MISMATCH),
    Case("declared tools, tools required", [{"name": "m", **TOOLS}], Reason.READY),
    Case("declares no models, no requirements", [], Reason.READY),
    Case("declares no models, tools required", [], Reason.CAPABILITY_MISMATCH),
    Case("window too small", [{"name": "m", "contextWindow": 8192}], Reason.CAPABILITY_MISMATCH),
    Case("window not declared", [{"name": "m"}], Reason.CAPABILITY_MISMATCH),
    Case("window large enough", [{"name": "m", "contextWindow": 128000}], Reason.READY),
    Case("cloud provider, Local tier required", ["m"], Reason.CAPABILITY_MISMATCH),
    Case("tier Local, Local tier required", ["m"], Reason.READY, provider={"tier": "Local"}),
    Case("suspended", ["m"], Reason.SUSPENDED, provider={"suspend": True}),
    Case(
        "suspended and open",
        ["m"],
        Reason.SUSPENDED,
        status="circuit-open",
        provider={"suspend": True},
    ),
    Case("circuit open", ["m"], Reason.CIRCUIT_OPEN, status="circuit-open"),
    Case("rate limited", ["m"], Reason.RATE_LIMITED, status="rate-limited"),
    Case("not ready", ["m"], Reason.UNHEALTHY, status="not-ready"),
    Case("status older than the spec", ["m"], Reason.UNHEALTHY, status="stale"),
    Case("no status yet", ["m"], Reason.UNHEALTHY, status="none"),
    Case("unhealthy wins over a mismatch", ["m"], Reason.UNHEALTHY, status="not-ready"),
    Case("virtual name, a declared model fits", [E5, BIG], Reason.READY),
    Case("virtual name, no declared model fits", [E5, SMALL], Reason.CAPABILITY_MISMATCH),
    Case("ref model has what is required", [SMALL, BIG], Reason.READY, ref_model="big"),
    Case("ref model lacks it", [SMALL, BIG], Reason.CAPABILITY_MISMATCH, ref_model="small"),
    Case("ref model undeclared, no requirements", [SMALL], Reason.READY, ref_model="x"),
    Case("ref model undeclared, chat required", [SMALL], Reason.CAPABILITY_MISMATCH, ref_model="x"),
    Case("no such provider", ["m"], Reason.NOT_FOUND, exists=False),
]
REQUIREMENTS = {
    "no declared capabilities, tools required": TOOLS,
    "declared tools, tools required": TOOLS,
    "declares no models, tools required": TOOLS,
    "window too small": {"minContextWindow": 32000},
    "window not declared": {"minContextWindow": 1},
    "window large enough": {"minContextWindow": 32000},
    "cloud provider, Local tier required": {"tiers": ["Local"]},
    "tier Local, Local tier required": {"tiers": ["Local"]},
    "unhealthy wins over a mismatch": {"tiers": ["Local"]},
    "virtual name, a declared model fits": TOOLS,
    "virtual name, no declared model fits": TOOLS,
    "ref model has what is required": TOOLS,
    "ref model lacks it": TOOLS,
    "ref model undeclared, chat required": {"capabilities": ["chat"]},
}


def policy_spec(case: Case) -> RoutingPolicySpec:
    ref: dict[str, Any] = {"name": "p"}
    if case.ref_model:
        ref["model"] = case.ref_model
    doc: dict[str, Any] = {"models": ["m"], "providers": [ref]}
    if case.id in REQUIREMENTS:
        doc["requirements"] = REQUIREMENTS[case.id]
    return RoutingPolicySpec.model_validate(doc)


def provider_spec(case: Case) -> LLMProviderSpec:
    models = [{"name": m} if isinstance(m, str) else m for m in case.models]
    doc = {"type": "OpenAICompatible", "endpoint": {"url": URL}, "models": models}
    return LLMProviderSpec.model_validate({**doc, **(case.provider or {})})


def operator_says(case: Case) -> tuple[bool, str]:
    views = {}
    if case.exists:
        spec, status = provider_spec(case), status_of(case.status)
        views["p"] = ProviderView("p", {}, GENERATION, spec, status)
    out = policy_status.compute(policy_spec(case), 1, views, [], T0)
    (row,) = out.providers
    return row.eligible, row.reason


def router_says(case: Case, entry: ProviderEntry | None) -> tuple[bool, str]:
    snap = Snapshot(
        providers={"p": entry} if entry else {},
        policies=(PolicyEntry("pol", policy_spec(case)),),
    )
    route = selection.route("m", Needs(), snap, LocalView())
    if route.ordered:
        return True, Reason.READY
    return False, {e.provider: e.reason for e in route.excluded}["p"]


def kubernetes_entry(case: Case) -> ProviderEntry | None:
    """The entry the router builds from the operator's status, its verdict by the same rule."""
    if not case.exists:
        return None
    spec = provider_spec(case)
    state = eligibility.state(spec, status_of(case.status), GENERATION)
    return ProviderEntry("p", spec, (URL,), ready=state is None, reason=state or "")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_operator_and_the_router_agree(case: Case) -> None:
    expected = (case.expected == Reason.READY, case.expected)
    assert operator_says(case) == expected
    assert router_says(case, kubernetes_entry(case)) == expected
    if case.status == "ready":  # manifests mode: no operator, so no status to read
        bare = ProviderEntry("p", provider_spec(case), (URL,)) if case.exists else None
        assert router_says(case, bare) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_router_watch_agrees_on_eligibility(case: Case) -> None:
    """Through the router's own watch code, from the raw objects the API server holds."""
    objects: dict[str, dict[str, Any]] = {}
    if case.exists:
        objects["p"] = {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "LLMProvider",
            "metadata": {"name": "p", "generation": GENERATION},
            "spec": provider_spec(case).to_wire(),
            "status": status_of(case.status).to_wire(),
        }
    store = cluster_snapshot.Store(kinds={"llmproviders": objects})
    entry = cluster_snapshot.build(store, "ns").snapshot.providers.get("p")
    assert router_says(case, entry)[0] == (case.expected == Reason.READY)


def test_the_headline_case_is_a_mismatch_on_both_sides() -> None:
    """A model that declares no capabilities under a policy requiring tools takes no traffic."""
    case = next(c for c in CASES if c.id == "no declared capabilities, tools required")
    assert operator_says(case) == (False, "CapabilityMismatch")
    assert router_says(case, kubernetes_entry(case)) == (False, "CapabilityMismatch")


def test_request_needs_trust_a_model_that_declares_no_capabilities() -> None:
    """Unlike a policy's requirements, a request's own needs pass a model declaring nothing."""
    spec = LLMProviderSpec.model_validate(
        {"type": "OpenAICompatible", "endpoint": {"url": URL}, "models": [{"name": "m"}]}
    )
    tools = frozenset({Capability.TOOLS})
    assert eligibility.verdict(spec, None, "m", None, needs=tools).eligible
    picky = spec.model_copy(update={"models": [spec.models[0].model_copy(update=TOOLS)]})
    assert eligibility.verdict(picky, None, "m", None, needs=tools).eligible
    vision = frozenset({Capability.VISION})
    assert eligibility.verdict(picky, None, "m", None, needs=vision).reason == (
        Reason.CAPABILITY_MISMATCH
    )


# -- activeProvider is the router's first choice --------------------------------------------

PRICES = {"a": ("3", "3"), "b": ("0.5", "0.5"), "c": ("1", "1"), "d": ("0.1", "0.1")}
WEIGHTS = {"a": 1, "b": 5, "c": 3, "d": 9}
HEALTH = {"a": (0.9, 10), "b": (1.0, 300), "c": (1.0, 20), "d": (0.5, 1)}
PRIORITIES = {"a": 1, "b": 1, "c": 1, "d": 2}  # d is in the second group


def _strategy_world(strategy: Strategy) -> tuple[RoutingPolicySpec, dict[str, ProviderView]]:
    spec = RoutingPolicySpec.model_validate(
        {"models": ["m"], "providers": [{"name": n} for n in "dcba"], "strategy": strategy}
    )
    views = {}
    for name in "abcd":
        inp, out = PRICES[name]
        model = {"name": "m", "cost": {"inputPerMTok": inp, "outputPerMTok": out}}
        doc = {
            "type": "OpenAICompatible",
            "endpoint": {"url": URL},
            "models": [model],
            "priority": PRIORITIES[name],
            "weight": WEIGHTS[name],
        }
        rate, latency = HEALTH[name]
        status = status_of("ready").model_copy(
            update={"health": HealthStatus(success_rate=rate, latency_ms=latency)}
        )
        views[name] = ProviderView(
            name, {}, GENERATION, LLMProviderSpec.model_validate(doc), status
        )
    return spec, views


EXPECTED_ACTIVE = {
    Strategy.PRIORITY: "a",  # rotation at rest: by name
    Strategy.ROUND_ROBIN: "a",
    Strategy.WEIGHTED: "b",  # the heaviest of the first group (d is heavier, but priority 2)
    Strategy.HEALTH_BASED: "c",  # success rate 1.0, then the faster
    Strategy.LEAST_RECENTLY_USED: "a",
    Strategy.LEAST_LOADED: "b",  # nobody loaded: the heaviest
    Strategy.LOWEST_COST: "b",
}


@pytest.mark.parametrize("strategy", list(Strategy))
def test_active_provider_follows_the_strategy(strategy: Strategy) -> None:
    spec, views = _strategy_world(strategy)
    status = policy_status.compute(spec, 1, views, [], T0)
    assert status.active_provider == EXPECTED_ACTIVE[strategy]
    # The router, at rest and with the operator's health figures, starts with the same one
    # (Weighted draws at random there; the operator shows the heaviest).
    entries = {n: ProviderEntry(n, v.spec, (URL,), ready=True) for n, v in views.items()}
    snap = Snapshot(providers=entries, policies=(PolicyEntry("pol", spec),))
    view = LocalView(
        success_rate={n: r for n, (r, _) in HEALTH.items()},
        latency={n: ms / 1000 for n, (_, ms) in HEALTH.items()},
    )
    route = selection.route("m", Needs(), snap, view)
    if strategy != Strategy.WEIGHTED:
        assert route.ordered[0].provider == status.active_provider
    assert route.ordered[-1].provider == "d"  # the lower group last, on both sides


# -- model-name conflicts -------------------------------------------------------------------


@dataclass(frozen=True)
class Pol:
    name: str
    created: str
    spec: RoutingPolicySpec


def pol(name: str, created: str, *models: str) -> Pol:
    spec = RoutingPolicySpec.model_validate({"models": list(models), "providers": [{"name": "p"}]})
    return Pol(name, created, spec)


OLD = "2025-01-01T00:00:00Z"
NEW = "2025-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("policies", "loser", "known", "lost"),
    [
        pytest.param(
            [pol("old", OLD, "chat"), pol("new", NEW, "chat", "other")],
            "new",
            [],
            {"chat": "old"},
            id="the same exact name: the younger loses it",
        ),
        pytest.param(
            [pol("old", OLD, "chat"), pol("new", NEW, "chat")],
            "old",
            [],
            {},
            id="the winner has no conflict",
        ),
        pytest.param(
            [pol("b", OLD, "chat"), pol("a", OLD, "chat")],
            "b",
            [],
            {"chat": "a"},
            id="equal ages: the name decides",
        ),
        pytest.param(
            [pol("old", OLD, "gpt-*"), pol("new", NEW, "gpt-*")],
            "new",
            ["gpt-4o"],
            {"gpt-*": "old"},
            id="the same glob",
        ),
        pytest.param(
            [pol("old", OLD, "gpt-*"), pol("new", NEW, "gpt-4*")],
            "new",
            ["gpt-4o", "gpt-4o-mini", "o1"],
            {"gpt-4o": "old", "gpt-4o-mini": "old"},
            id="declared names an older glob takes",
        ),
        pytest.param(
            [pol("old", OLD, "gpt-*"), pol("new", NEW, "gpt-4o")],
            "old",
            ["gpt-4o"],
            {},
            id="an exact name beating a glob is no conflict",
        ),
        pytest.param(
            [pol("old", OLD, "gpt-4o"), pol("new", NEW, "gpt-*")],
            "new",
            ["gpt-4o", "gpt-3.5"],
            {},
            id="nor is a glob giving way to an exact name",
        ),
    ],
)
def test_conflicts(policies: list[Pol], loser: str, known: list[str], lost: dict[str, str]) -> None:
    me = next(p for p in policies if p.name == loser)
    found = eligibility.conflicts(me, policies, known)
    assert {c.model: c.winner for c in found} == lost
    # The router resolves each lost name to the named winner.
    for model, winner in lost.items():
        if not eligibility.GLOB_CHARS & set(model):
            served_by = selection.find_policy(model, [_entry(p) for p in policies])
            assert served_by is not None
            assert served_by.name == winner


def _entry(p: Pol) -> PolicyEntry:
    return PolicyEntry(p.name, p.spec, created=p.created)


def _accepted_and_ready(models: list[str], conflicts: list[eligibility.Conflict]) -> Any:
    spec = RoutingPolicySpec.model_validate({"models": models, "providers": [{"name": "p"}]})
    views = {"p": ProviderView("p", {}, GENERATION, provider_spec(CASES[0]), status_of("ready"))}
    status = policy_status.compute(spec, 1, views, [], T0, conflicts=conflicts)
    accepted = conditions.find(status.conditions, "Accepted")
    ready = conditions.find(status.conditions, "Ready")
    assert accepted is not None
    assert ready is not None
    return (accepted.status, accepted.reason, accepted.message), (ready.status, ready.reason)


def test_a_partial_conflict_is_accepted_with_a_reason() -> None:
    accepted, ready = _accepted_and_ready(["chat", "m"], [eligibility.Conflict("chat", "old")])
    assert accepted == (
        "True",
        "ModelConflict",
        "served by an older policy: chat (RoutingPolicy old)",
    )
    assert ready == ("True", "Ready")


def test_a_policy_left_with_nothing_is_not_accepted_nor_ready() -> None:
    accepted, ready = _accepted_and_ready(["chat"], [eligibility.Conflict("chat", "old")])
    assert accepted[:2] == ("False", "ModelConflict")
    assert "chat (RoutingPolicy old)" in accepted[2]
    assert ready == ("False", "ModelConflict")


def test_no_conflict_is_plainly_accepted() -> None:
    accepted, _ = _accepted_and_ready(["chat"], [])
    assert accepted == ("True", "Valid", "")


class _Kube:
    """Records status patches and Events instead of sending them."""

    def __init__(self) -> None:
        self.patches: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []  # (object name, type, reason)

    async def write_status(
        self, kind: str, ns: str, name: str, render: Render, uid: str | None = None
    ) -> Written:
        assert kind == "routingpolicies"
        self.patches[ns, name] = render(None)
        return Written.WRITTEN

    async def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.events.append((ref.name, type_, reason))


def test_the_operator_loop_compares_policies_of_one_namespace() -> None:
    kube = _Kube()
    loop = policies.Policies(cast("Kube", kube), clock=lambda: T0)
    for ns, name, created, models in [
        ("team-a", "old", OLD, ["chat", "gpt-*"]),
        ("team-a", "new", NEW, ["chat", "gpt-4*", "mine"]),
        ("team-b", "other", "2024-01-01T00:00:00Z", ["chat", "mine"]),
    ]:
        meta = {"name": name, "namespace": ns, "generation": 1, "creationTimestamp": created}
        body = {"metadata": meta, "spec": {"models": models, "providers": [{"name": "p"}]}}
        loop.policy_event((ns, name), body)
    provider = {
        "metadata": {"name": "p", "namespace": "team-a", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "type": "OpenAICompatible",
            "endpoint": {"url": URL},
            "models": [{"name": "gpt-4o"}],
        },
    }
    loop.provider_event(("team-a", "p"), provider)
    for key in list(loop.policies):
        asyncio.run(loop.reconcile(key))

    def accepted_of(ns: str, name: str) -> tuple[str, str, str]:
        (c,) = [c for c in kube.patches[ns, name]["conditions"] if c["type"] == "Accepted"]
        return c["status"], c["reason"], c["message"]

    assert accepted_of("team-a", "new") == (
        "True",
        "ModelConflict",
        "served by an older policy: chat (RoutingPolicy old), gpt-4o (RoutingPolicy old)",
    )
    assert accepted_of("team-a", "old")[:2] == ("True", "Valid")
    assert accepted_of("team-b", "other")[:2] == ("True", "Valid")  # another namespace
    # No provider is eligible yet (nothing probed "p"): each policy starts with a Warning Event;
    # team-b's also names its missing provider.
    assert sorted(kube.events) == [
        ("new", "Warning", "NoEligibleProviders"),
        ("old", "Warning", "NoEligibleProviders"),
        ("other", "Warning", "NoEligibleProviders"),
        ("other", "Warning", "NotFound"),
    ]
