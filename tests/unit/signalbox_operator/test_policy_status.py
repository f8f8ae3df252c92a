"""RoutingPolicy status from the providers it resolves to, and label selectors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from signalbox_api import conditions, selectors
from signalbox_api.conditions import Condition, ConditionStatus, Reason
from signalbox_api.policy import LabelSelector, RoutingPolicySpec, RoutingPolicyStatus
from signalbox_api.provider import (
    CircuitState,
    CircuitStatus,
    LLMProviderSpec,
    LLMProviderStatus,
)
from signalbox_operator.status import policy_status
from signalbox_operator.status.policy_status import ProviderView

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

CHAT_TOOLS_128K = {"name": "big", "capabilities": ["chat", "tools"], "contextWindow": 128000}
CHAT_8K = {"name": "small", "aliases": ["tiny"], "capabilities": ["chat"], "contextWindow": 8192}
CHAT_NO_WINDOW = {"name": "plain", "capabilities": ["chat", "tools"]}


def provider(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    generation: int = 2,
    observed: int | None = 2,
    ready: ConditionStatus | None = "True",
    available_reason: str = "Ready",
    circuit: CircuitState | None = CircuitState.CLOSED,
    local: bool = False,
    **spec_fields: Any,
) -> ProviderView:
    """A view of one provider; ready and fresh unless told otherwise."""
    raw: dict[str, Any]
    if local:
        raw = {"type": "Ollama", "endpoint": {"service": {"name": name, "port": 11434}}}
    else:
        raw = {
            "type": "OpenAI",
            "endpoint": {"url": "https://api.openai.com/v1"},
            "auth": {"secretRef": {"name": "openai", "key": "apiKey"}},
        }
    raw.update(spec_fields)
    conds = []
    if ready is not None:
        conds.append(
            Condition(
                type="Ready",
                status=ready,
                reason="Ready" if ready == "True" else "Pending",
                observed_generation=observed,
                last_transition_time=T0,
            )
        )
    conds.append(
        Condition(
            type="Available",
            status="True" if available_reason == "Ready" else "False",
            reason=available_reason,
            observed_generation=observed,
            last_transition_time=T0,
        )
    )
    status = LLMProviderStatus(
        observed_generation=observed,
        conditions=conds,
        circuit=CircuitStatus(state=circuit) if circuit is not None else None,
    )
    return ProviderView(
        name=name,
        labels=labels or {},
        generation=generation,
        spec=LLMProviderSpec.model_validate(raw),
        status=status,
    )


def policy(**fields: Any) -> RoutingPolicySpec:
    raw: dict[str, Any] = {"models": ["chat-*"]}
    raw.update(fields)
    if "providers" not in raw and "providerSelector" not in raw:
        raw["providers"] = [{"name": "p"}]
    return RoutingPolicySpec.model_validate(raw)


def index(*views: ProviderView) -> dict[str, ProviderView]:
    return {v.name: v for v in views}


def cond(status: RoutingPolicyStatus, type_: str) -> tuple[str, str, str]:
    c = conditions.find(status.conditions, type_)
    assert c is not None, f"no {type_} condition"
    return (c.status, c.reason, c.message)


# -- exclusion reasons ----------------------------------------------------------------------

EXCLUSIONS: list[tuple[str, dict[str, Any], ProviderView | None, str | None, Reason]] = [
    ("ready provider", {}, provider("p"), None, Reason.READY),
    ("missing provider", {}, None, None, Reason.NOT_FOUND),
    ("suspended", {}, provider("p", suspend=True), None, Reason.SUSPENDED),
    (
        "suspended wins over an open circuit",
        {},
        provider("p", suspend=True, circuit=CircuitState.OPEN, ready="False"),
        None,
        Reason.SUSPENDED,
    ),
    ("circuit open", {}, provider("p", circuit=CircuitState.OPEN), None, Reason.CIRCUIT_OPEN),
    (
        "circuit open wins over rate limited",
        {},
        provider("p", circuit=CircuitState.OPEN, available_reason="RateLimited"),
        None,
        Reason.CIRCUIT_OPEN,
    ),
    (
        "half-open is not excluded",
        {},
        provider("p", circuit=CircuitState.HALF_OPEN),
        None,
        Reason.READY,
    ),
    (
        "rate limited",
        {},
        provider("p", available_reason="RateLimited", ready="False"),
        None,
        Reason.RATE_LIMITED,
    ),
    ("Ready False", {}, provider("p", ready="False"), None, Reason.UNHEALTHY),
    ("Ready Unknown", {}, provider("p", ready="Unknown"), None, Reason.UNHEALTHY),
    ("no Ready condition", {}, provider("p", ready=None), None, Reason.UNHEALTHY),
    ("no status at all", {}, provider("p", ready=None, circuit=None), None, Reason.UNHEALTHY),
    (
        "status older than the spec",
        {},
        provider("p", generation=3, observed=2),
        None,
        Reason.UNHEALTHY,
    ),
    (
        "status without observedGeneration",
        {},
        provider("p", observed=None),
        None,
        Reason.UNHEALTHY,
    ),
    (
        "unhealthy wins over a capability mismatch",
        {"requirements": {"tiers": ["Local"]}},
        provider("p", ready="False"),
        None,
        Reason.UNHEALTHY,
    ),
    (
        "cloud provider, Local tier required",
        {"requirements": {"tiers": ["Local"]}},
        provider("p"),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "local provider, Local tier required",
        {"requirements": {"tiers": ["Local"]}},
        provider("p", local=True),
        None,
        Reason.READY,
    ),
    (
        "explicit tier wins over the default",
        {"requirements": {"tiers": ["Local"]}},
        provider("p", tier="Local"),
        None,
        Reason.READY,
    ),
    (
        "both tiers allowed",
        {"requirements": {"tiers": ["Local", "Cloud"]}},
        provider("p"),
        None,
        Reason.READY,
    ),
    (
        "some declared model has the capabilities",
        {"requirements": {"capabilities": ["tools"]}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        None,
        Reason.READY,
    ),
    (
        "no declared model has the capabilities",
        {"requirements": {"capabilities": ["tools", "vision"]}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "nothing declared meets a requirement",
        {"requirements": {"capabilities": ["vision"], "minContextWindow": 1000}},
        provider("p"),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "context window large enough",
        {"requirements": {"minContextWindow": 128000}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        None,
        Reason.READY,
    ),
    (
        "context window too small",
        {"requirements": {"minContextWindow": 128001}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "unknown context window does not meet a minimum",
        {"requirements": {"minContextWindow": 1}},
        provider("p", models=[CHAT_NO_WINDOW]),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "capabilities and window must hold for the same model",
        {"requirements": {"capabilities": ["tools"], "minContextWindow": 200000}},
        provider("p", models=[CHAT_TOOLS_128K, {**CHAT_8K, "contextWindow": 200000}]),
        None,
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "ref model is the capable one",
        {"requirements": {"capabilities": ["tools"]}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        "big",
        Reason.READY,
    ),
    (
        "ref model lacks the capability another model has",
        {"requirements": {"capabilities": ["tools"]}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        "small",
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "ref model found by alias",
        {"requirements": {"minContextWindow": 100000}},
        provider("p", models=[CHAT_8K, CHAT_TOOLS_128K]),
        "tiny",
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "ref model not declared",
        {"requirements": {"capabilities": ["chat"]}},
        provider("p", models=[CHAT_8K]),
        "other",
        Reason.CAPABILITY_MISMATCH,
    ),
    (
        "ref model is irrelevant without capability requirements",
        {"requirements": {"tiers": ["Cloud"]}},
        provider("p", models=[CHAT_8K]),
        "other",
        Reason.READY,
    ),
]


@pytest.mark.parametrize(
    ("fields", "view", "model", "reason"),
    [pytest.param(f, v, m, r, id=name) for name, f, v, m, r in EXCLUSIONS],
)
def test_exclusion(
    fields: dict[str, Any], view: ProviderView | None, model: str | None, reason: Reason
) -> None:
    assert policy_status.exclusion(policy(**fields), view, model, T0) == reason


def test_per_ref_model_is_used_by_compute() -> None:
    spec = policy(
        providers=[{"name": "a", "model": "small"}, {"name": "b", "model": "big"}],
        requirements={"capabilities": ["tools"]},
    )
    views = index(
        provider("a", models=[CHAT_8K, CHAT_TOOLS_128K]),
        provider("b", models=[CHAT_8K, CHAT_TOOLS_128K]),
    )
    status = policy_status.compute(spec, 1, views, [], T0)
    assert [(r.name, r.eligible, r.reason) for r in status.providers] == [
        ("a", False, "CapabilityMismatch"),
        ("b", True, "Ready"),
    ]
    assert status.active_provider == "b"


# -- ordering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refs", "views", "order", "strategy"),
    [
        pytest.param(
            [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            [provider("a", priority=20), provider("b", priority=10), provider("c", priority=30)],
            ["b", "a", "c"],
            "Priority",
            id="lower priority first",
        ),
        pytest.param(
            [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            [provider("a", weight=1), provider("b", weight=5), provider("c", weight=3)],
            ["a", "b", "c"],
            "Priority",
            id="then name: Priority rotates inside a group, from the first by name",
        ),
        pytest.param(
            [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            [provider("a", weight=1), provider("b", weight=5), provider("c", weight=3)],
            ["b", "c", "a"],
            "Weighted",
            id="Weighted: the heaviest first",
        ),
        pytest.param(
            [{"name": "zeta"}, {"name": "alpha"}, {"name": "mid"}],
            [provider("zeta"), provider("alpha"), provider("mid")],
            ["alpha", "mid", "zeta"],
            "Priority",
            id="then name",
        ),
        pytest.param(
            [{"name": "a", "priority": 5}, {"name": "b"}],
            [provider("a", priority=50), provider("b", priority=10)],
            ["a", "b"],
            "Priority",
            id="ref priority overrides",
        ),
        pytest.param(
            [{"name": "a", "weight": 1}, {"name": "b", "weight": 9}],
            [provider("a", weight=100), provider("b", weight=1)],
            ["b", "a"],
            "Weighted",
            id="ref weight overrides",
        ),
        pytest.param(
            [{"name": "a", "priority": 0}, {"name": "b"}],
            [provider("a", priority=50), provider("b", priority=1)],
            ["a", "b"],
            "Priority",
            id="ref priority 0 is an override, not unset",
        ),
        pytest.param(
            [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            [
                provider("a", priority=1, circuit=CircuitState.OPEN),
                provider("b", priority=2),
                provider("c", priority=3),
            ],
            ["b", "c"],
            "Priority",
            id="excluded providers are skipped",
        ),
    ],
)
def test_eligible_order(
    refs: list[dict[str, Any]], views: list[ProviderView], order: list[str], strategy: str
) -> None:
    spec = policy(providers=refs, strategy=strategy)
    status = policy_status.compute(spec, 1, index(*views), [], T0)
    assert status.active_provider == order[0]
    assert status.eligible == f"{len(order)}/{len(refs)}"
    assert sorted(r.name for r in status.providers if r.eligible) == sorted(order)
    # Rows keep the policy's own order.
    assert [r.name for r in status.providers] == [r["name"] for r in refs]
    # Open the winner's circuit, one after another: the next in line takes over.
    for i, expected in enumerate(order):
        tripped = [open_circuit(v) if v.name in order[:i] else v for v in views]
        again = policy_status.compute(spec, 1, index(*tripped), [], T0)
        assert again.active_provider == expected, f"after opening {order[:i]}"
    all_out = [open_circuit(v) for v in views]
    assert policy_status.compute(spec, 1, index(*all_out), [], T0).active_provider is None


def open_circuit(view: ProviderView) -> ProviderView:
    status = view.status.model_copy(update={"circuit": CircuitStatus(state=CircuitState.OPEN)})
    return dataclasses.replace(view, status=status)


def test_rows_carry_effective_priority_and_weight() -> None:
    spec = policy(
        providers=[
            {"name": "a", "priority": 7, "weight": 3},
            {"name": "b"},
            {"name": "ghost", "priority": 9},
        ]
    )
    views = index(provider("a", priority=50, weight=1), provider("b", priority=60, weight=4))
    status = policy_status.compute(spec, 1, views, [], T0)
    assert [(r.name, r.priority, r.weight, r.reason) for r in status.providers] == [
        ("a", 7, 3, "Ready"),
        ("b", 60, 4, "Ready"),
        ("ghost", 9, 0, "NotFound"),
    ]


# -- conditions ----------------------------------------------------------------------------


def test_all_eligible() -> None:
    spec = policy(providers=[{"name": "a"}, {"name": "b"}])
    status = policy_status.compute(spec, 4, index(provider("a"), provider("b")), [], T0)
    assert cond(status, "Accepted") == ("True", "Valid", "")
    assert cond(status, "ResolvedRefs") == ("True", "Resolved", "2 provider(s)")
    assert cond(status, "Ready") == ("True", "Ready", "2 eligible provider(s)")
    assert cond(status, "Degraded") == ("False", "AllProvidersEligible", "")
    assert status.eligible == "2/2"
    assert status.observed_generation == 4
    assert all(c.observed_generation == 4 for c in status.conditions)
    assert [c.type for c in status.conditions] == ["Accepted", "ResolvedRefs", "Ready", "Degraded"]


def test_some_out_is_degraded() -> None:
    spec = policy(providers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    views = index(
        provider("a", circuit=CircuitState.OPEN),
        provider("b"),
        provider("c", ready="False"),
    )
    status = policy_status.compute(spec, 1, views, [], T0)
    assert cond(status, "Ready") == ("True", "Ready", "1 eligible provider(s)")
    assert cond(status, "Degraded") == (
        "True",
        "FailingOver",
        "out: a (CircuitOpen), c (Unhealthy)",
    )
    assert status.active_provider == "b"
    assert status.eligible == "1/3"


def test_none_eligible() -> None:
    spec = policy(providers=[{"name": "a"}, {"name": "b"}])
    views = index(provider("a", suspend=True), provider("b", available_reason="RateLimited"))
    status = policy_status.compute(spec, 1, views, [], T0)
    assert cond(status, "ResolvedRefs")[:2] == ("True", "Resolved")
    assert cond(status, "Ready") == ("False", "NoEligibleProviders", "no provider can take traffic")
    assert cond(status, "Degraded") == ("False", "NoEligibleProviders", "")
    assert status.active_provider is None
    assert status.eligible == "0/2"
    assert [r.reason for r in status.providers] == ["Suspended", "RateLimited"]


def test_missing_refs_are_unresolved() -> None:
    spec = policy(providers=[{"name": "a"}, {"name": "ghost"}, {"name": "gone"}])
    status = policy_status.compute(spec, 1, index(provider("a")), [], T0)
    assert cond(status, "ResolvedRefs") == ("False", "NotFound", "not found: ghost, gone")
    assert cond(status, "Ready")[:2] == ("True", "Ready")
    assert cond(status, "Degraded")[:2] == ("True", "FailingOver")
    assert status.eligible == "1/3"


def test_a_policy_selecting_thousands_gets_a_bounded_correct_status() -> None:
    """1,000 providers by selector (the CRD holds 256 rows): counts cover all, the rows hold the
    eligible ones first, conditions name ten and count the rest, and the API's model of the
    status (its limits) accepts it."""
    views = index(
        *(
            provider(f"p{i:04}", labels={"team": "ml"}, ready="True" if i % 4 == 0 else "False")
            for i in range(1000)
        )
    )
    spec = policy(providerSelector={"matchLabels": {"team": "ml"}})
    status = policy_status.compute(spec, 1, views, [], T0)
    RoutingPolicyStatus.model_validate(status.to_wire())
    assert status.eligible == "250/1000"
    assert len(status.providers) == policy_status.MAX_ROWS
    assert all(r.eligible for r in status.providers[:250])
    assert not any(r.eligible for r in status.providers[250:])
    assert cond(status, "ResolvedRefs")[2] == "1000 provider(s); status.providers shows 256"
    degraded = cond(status, "Degraded")[2]
    assert degraded.startswith("out: p0001 (Unhealthy), p0002 (Unhealthy)")
    assert degraded.endswith("and 740 more")


def test_selector_matching_nothing() -> None:
    spec = policy(providerSelector={"matchLabels": {"team": "nobody"}})
    views = index(provider("a", labels={"team": "ml"}))
    status = policy_status.compute(spec, 1, views, [], T0)
    assert status.providers == []
    assert cond(status, "ResolvedRefs") == (
        "False",
        "NotFound",
        "the selector matches no LLMProvider",
    )
    assert cond(status, "Ready")[:2] == ("False", "NoEligibleProviders")
    assert status.eligible == "0/0"
    assert status.active_provider is None


def test_transition_times_survive_recomputation() -> None:
    spec = policy(providers=[{"name": "a"}, {"name": "b"}])
    t1 = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    first = policy_status.compute(spec, 1, index(provider("a"), provider("b")), [], T0)
    second = policy_status.compute(
        spec, 1, index(provider("a"), provider("b", ready="False")), first.conditions, t1
    )
    times = {c.type: c.last_transition_time for c in second.conditions}
    assert times == {"Accepted": T0, "ResolvedRefs": T0, "Ready": T0, "Degraded": t1}


# -- selectors -----------------------------------------------------------------------------

VIEWS = index(
    provider("ollama-a", labels={"tier": "local", "team": "ml"}, local=True),
    provider("ollama-b", labels={"tier": "local", "team": "web"}, local=True),
    provider("openai", labels={"tier": "cloud", "team": "ml", "paid": "yes"}),
    provider("bare"),
)


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ({}, ["bare", "ollama-a", "ollama-b", "openai"]),
        ({"matchLabels": {"tier": "local"}}, ["ollama-a", "ollama-b"]),
        ({"matchLabels": {"tier": "local", "team": "ml"}}, ["ollama-a"]),
        (
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "x"]}]},
            ["ollama-a", "openai"],
        ),
        (
            {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]},
            ["bare", "ollama-b"],
        ),
        ({"matchExpressions": [{"key": "paid", "operator": "Exists"}]}, ["openai"]),
        (
            {"matchExpressions": [{"key": "paid", "operator": "DoesNotExist"}]},
            ["bare", "ollama-a", "ollama-b"],
        ),
        (
            {
                "matchLabels": {"team": "ml"},
                "matchExpressions": [{"key": "paid", "operator": "DoesNotExist"}],
            },
            ["ollama-a"],
        ),
        ({"matchLabels": {"tier": "gpu"}}, []),
    ],
)
def test_resolve_names_with_a_selector(selector: dict[str, Any], names: list[str]) -> None:
    spec = policy(providerSelector=selector)
    assert policy_status.resolve_names(spec, VIEWS) == names


def test_resolve_names_with_a_list_keeps_order_and_missing_names() -> None:
    spec = policy(providers=[{"name": "openai"}, {"name": "ghost"}, {"name": "bare"}])
    assert policy_status.resolve_names(spec, VIEWS) == ["openai", "ghost", "bare"]


def test_resolve_names_with_neither() -> None:
    spec = RoutingPolicySpec.model_validate({"models": ["m"]})
    assert policy_status.resolve_names(spec, VIEWS) == []


def expr(op: str, values: list[str] | None = None) -> LabelSelector:
    req: dict[str, Any] = {"key": "env", "operator": op}
    if values is not None:
        req["values"] = values
    return LabelSelector.model_validate({"matchExpressions": [req]})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (expr("In", ["prod", "stage"]), {"env": "prod"}, True),
        (expr("In", ["prod", "stage"]), {"env": "dev"}, False),
        (expr("In", ["prod"]), {}, False),
        (expr("In", [""]), {"env": ""}, True),
        (expr("NotIn", ["prod"]), {"env": "dev"}, True),
        (expr("NotIn", ["prod"]), {"env": "prod"}, False),
        (expr("NotIn", ["prod"]), {}, True),
        (expr("Exists"), {"env": ""}, True),
        (expr("Exists"), {"other": "x"}, False),
        (expr("DoesNotExist"), {}, True),
        (expr("DoesNotExist"), {"env": "prod"}, False),
        (LabelSelector(), {}, True),
        (LabelSelector(), {"a": "b"}, True),
        (LabelSelector.model_validate({"matchLabels": {"a": "b"}}), {"a": "b", "c": "d"}, True),
        (LabelSelector.model_validate({"matchLabels": {"a": "b"}}), {"a": "c"}, False),
        (LabelSelector.model_validate({"matchLabels": {"a": "b"}}), {}, False),
        (LabelSelector.model_validate({"matchLabels": {"a": ""}}), {}, False),
        (
            LabelSelector.model_validate(
                {
                    "matchLabels": {"a": "b"},
                    "matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["prod"]},
                        {"key": "legacy", "operator": "DoesNotExist"},
                    ],
                }
            ),
            {"a": "b", "env": "prod", "legacy": "1"},
            False,
        ),
    ],
)
def test_selector_matches(selector: LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert selectors.matches(selector, labels) is expected


def _c(type_: str, status: str, reason: str, message: str = "") -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_each_condition_that_moves_is_one_event_a_warning_when_it_went_bad() -> None:
    ready = _c("Ready", "True", "Ready", "2 eligible provider(s)")
    calm = _c("Degraded", "False", "AllProvidersEligible")
    assert policy_status.changes([], [ready, calm]) == []  # a new policy, well: no news
    first_bad = policy_status.changes([], [_c("Ready", "False", "NoEligibleProviders")])
    assert [(c.reason, c.warning) for c in first_bad] == [("NoEligibleProviders", True)]
    failing = _c("Degraded", "True", "FailingOver", "out: primary")
    assert policy_status.changes([ready, calm], [ready, failing]) == [
        policy_status.Change("Degraded", "True", "FailingOver", "out: primary", warning=True)
    ]
    back = policy_status.changes([ready, failing], [ready, calm])
    assert [(c.type, c.warning) for c in back] == [("Degraded", False)]
    down = _c("Ready", "False", "NoEligibleProviders", "0 eligible")
    assert [(c.reason, c.warning) for c in policy_status.changes([ready], [down])] == [
        ("NoEligibleProviders", True)
    ]
    assert [(c.reason, c.warning) for c in policy_status.changes([down], [ready])] == [
        ("Ready", False)
    ]
    assert policy_status.changes([ready], [_c("Ready", "Unknown", "Pending")]) == []
