"""Computes a RoutingPolicy's status from the providers it resolves to. Pure.

Each provider is eligible or excluded with one reason by the rule the router applies too
(``signalbox_api.eligibility``): NotFound, Suspended, CircuitOpen, RateLimited, Unhealthy (not
Ready, or status older than the spec), CapabilityMismatch. ``Ready`` needs one eligible
provider; ``Degraded`` says some are out. ``activeProvider`` is the first of the eligible
providers in the strategy's order (``signalbox_api.ordering``) as the operator can know it:
name order where the router rotates (Priority, RoundRobin) or goes by its own history
(LeastRecentlyUsed), the heaviest first where it draws by weight (Weighted) or by load
(LeastLoaded), the probes' success rate and latency for HealthBased, the declared prices for
LowestCost. A model name another, older policy also claims is a ``ModelConflict`` on
``Accepted`` (``False`` when the policy is left serving nothing, with ``Ready=False`` too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from signalbox_api import conditions, eligibility, ordering
from signalbox_api.conditions import Condition, ConditionStatus, ConditionType, Reason
from signalbox_api.policy import (
    PolicyProviderStatus,
    ProviderRef,
    RoutingPolicySpec,
    RoutingPolicyStatus,
)
from signalbox_api.primitives import parse_money
from signalbox_api.provider import LLMProviderSpec, LLMProviderStatus, ModelSpec

MAX_ROWS = 256  # status.providers holds this many rows (the CRD's limit)
NAMED = 10  # providers a condition message names; the rest are counted


@dataclass(frozen=True)
class ProviderView:
    """What a policy needs to know of one LLMProvider."""

    name: str
    labels: Mapping[str, str]
    generation: int | None
    spec: LLMProviderSpec
    status: LLMProviderStatus


def resolve_names(spec: RoutingPolicySpec, providers: Mapping[str, ProviderView]) -> list[str]:
    """The provider names a policy refers to: its list, or what its selector matches."""
    return eligibility.resolve(spec, {n: v.labels for n, v in providers.items()})


Verdict = tuple[ConditionStatus, str, str]


@dataclass(frozen=True)
class _Choice:
    """An eligible provider as the strategies rank it."""

    provider: str
    priority: int
    weight: int
    cost: Decimal | None


def _cost(model: ModelSpec | None) -> Decimal | None:
    if model is None or model.cost is None:
        return None
    return parse_money(model.cost.input_per_m_tok) + parse_money(model.cost.output_per_m_tok)


def _figures(providers: Mapping[str, ProviderView]) -> ordering.AtRest:
    """What the operator knows for HealthBased: its probes' success rate and latency."""
    rates, latency = {}, {}
    for name, view in providers.items():
        health = view.status.health
        if health is not None and health.success_rate is not None:
            rates[name] = health.success_rate
        if health is not None and health.latency_ms is not None:
            latency[name] = health.latency_ms / 1000
    return ordering.AtRest(success_rate=rates, latency=latency)


def compute(
    spec: RoutingPolicySpec,
    generation: int | None,
    providers: Mapping[str, ProviderView],
    previous: Sequence[Condition],
    now: datetime,
    *,
    conflicts: Sequence[eligibility.Conflict] = (),
) -> RoutingPolicyStatus:
    """The status; ``conflicts`` are the policy's names older policies serve
    (``eligibility.conflicts``)."""
    refs = {p.name: p for p in spec.providers or []}
    rows, choices = [], []
    for name in resolve_names(spec, providers):
        view = providers.get(name)
        ref = refs.get(name)
        found = _verdict(spec, view, ref)
        priority, weight = eligibility.effective(ref, view.spec if view else None)
        rows.append(
            PolicyProviderStatus(
                name=name,
                eligible=found.eligible,
                reason=found.reason,
                priority=priority,
                weight=weight,
            )
        )
        if found.eligible:
            choices.append(_Choice(name, priority, weight, _cost(found.declared)))
    ranked = ordering.order(choices, spec.strategy, _figures(providers))
    conds = list(previous)
    for type_, (status, why, message) in _verdicts(spec, rows, ranked, conflicts).items():
        conds = conditions.set_condition(
            conds, type_, status, why, message, generation=generation, now=now
        )
    return RoutingPolicyStatus(
        observed_generation=generation,
        conditions=conds,
        providers=shown_rows(rows, ranked),
        active_provider=ranked[0].provider if ranked else None,
        eligible=f"{len(ranked)}/{len(rows)}",
    )


def shown_rows(
    rows: Sequence[PolicyProviderStatus], ranked: Sequence[_Choice]
) -> list[PolicyProviderStatus]:
    """The rows ``status.providers`` can hold (``MAX_ROWS``): all of them, or the eligible
    ones in the strategy's order and then the rest; the counts and conditions cover all."""
    if len(rows) <= MAX_ROWS:
        return list(rows)
    by_name = {r.name: r for r in rows}
    first = [by_name[c.provider] for c in ranked]
    rest = [r for r in rows if not r.eligible]
    return (first + rest)[:MAX_ROWS]


def _names(names: Sequence[str]) -> str:
    """Up to ``NAMED`` names, and how many more."""
    shown = ", ".join(names[:NAMED])
    return shown if len(names) <= NAMED else f"{shown} and {len(names) - NAMED} more"


def _verdict(
    spec: RoutingPolicySpec, view: ProviderView | None, ref: ProviderRef | None
) -> eligibility.Verdict:
    if view is None:
        return eligibility.Verdict(Reason.NOT_FOUND)
    state = eligibility.state(view.spec, view.status, view.generation)
    return eligibility.policy_verdict(spec, view.spec, state, ref)


def exclusion(
    spec: RoutingPolicySpec, view: ProviderView | None, model: str | None, now: datetime
) -> Reason:
    """Why a provider cannot take this policy's traffic now (``model``: the reference's
    upstream model, if any), or Reason.READY."""
    del now
    ref = ProviderRef(name=view.name, model=model) if view is not None and model else None
    return _verdict(spec, view, ref).reason


def _conflict_verdicts(
    spec: RoutingPolicySpec, conflicts: Sequence[eligibility.Conflict]
) -> tuple[Verdict, Verdict | None]:
    """``Accepted``, and ``Ready`` when the policy serves nothing at all."""
    if not conflicts:
        return ("True", Reason.VALID, ""), None
    lost = ", ".join(f"{c.model} (RoutingPolicy {c.winner})" for c in conflicts)
    message = f"served by an older policy: {lost}"
    if {c.model for c in conflicts} >= set(spec.models):
        nothing = "every model name is served by an older policy"
        return ("False", Reason.MODEL_CONFLICT, message), ("False", Reason.MODEL_CONFLICT, nothing)
    return ("True", Reason.MODEL_CONFLICT, message), None


def _verdicts(
    spec: RoutingPolicySpec,
    rows: Sequence[PolicyProviderStatus],
    eligible: Sequence[_Choice],
    conflicts: Sequence[eligibility.Conflict],
) -> dict[str, Verdict]:
    missing = [r.name for r in rows if r.reason == Reason.NOT_FOUND]
    accepted, shadowed = _conflict_verdicts(spec, conflicts)
    out: dict[str, Verdict] = {ConditionType.ACCEPTED: accepted}
    if missing:
        out[ConditionType.RESOLVED_REFS] = (
            "False",
            Reason.NOT_FOUND,
            "not found: " + _names(missing),
        )
    elif not rows:
        what = "the selector matches no LLMProvider" if spec.provider_selector else "no providers"
        out[ConditionType.RESOLVED_REFS] = ("False", Reason.NOT_FOUND, what)
    else:
        cut = f"; status.providers shows {MAX_ROWS}" if len(rows) > MAX_ROWS else ""
        out[ConditionType.RESOLVED_REFS] = (
            "True",
            Reason.RESOLVED,
            f"{len(rows)} provider(s){cut}",
        )
    if shadowed is not None:
        out[ConditionType.READY] = shadowed
    elif eligible:
        out[ConditionType.READY] = ("True", Reason.READY, f"{len(eligible)} eligible provider(s)")
    else:
        out[ConditionType.READY] = (
            "False",
            Reason.NO_ELIGIBLE_PROVIDERS,
            "no provider can take traffic",
        )
    out_rows = [f"{r.name} ({r.reason})" for r in rows if not r.eligible]
    if eligible and out_rows:
        out[ConditionType.DEGRADED] = ("True", Reason.FAILING_OVER, "out: " + _names(out_rows))
    elif eligible:
        out[ConditionType.DEGRADED] = ("False", Reason.ALL_PROVIDERS_ELIGIBLE, "")
    else:
        out[ConditionType.DEGRADED] = ("False", Reason.NO_ELIGIBLE_PROVIDERS, "")
    return out


@dataclass(frozen=True)
class Change:
    """A condition that moved, as the Event that tells of it: a Warning when it moved to a bad
    state (Degraded=True, any other condition False)."""

    type: str
    status: str
    reason: str
    message: str
    warning: bool


def changes(before: Sequence[Condition], after: Sequence[Condition]) -> list[Change]:
    """The conditions of ``after`` whose status or reason differs from ``before``'s. A
    condition that appears in a good state (a new policy's first status) is no news; one
    that appears in a bad state is."""
    out = []
    for now in after:
        if now.status == "Unknown":
            continue
        bad = (now.status == "True") == (now.type == ConditionType.DEGRADED)
        was = conditions.find(before, now.type)
        if (was is None and not bad) or (
            was is not None and (was.status, was.reason) == (now.status, now.reason)
        ):
            continue
        out.append(Change(now.type, now.status, now.reason, now.message, bad))
    return out
