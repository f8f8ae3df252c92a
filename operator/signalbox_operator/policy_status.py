"""Computes a RoutingPolicy's status from the providers it resolves to. Pure.

Each provider is eligible or excluded with one reason, checked in this order: NotFound,
Suspended, CircuitOpen, RateLimited, Unhealthy (not Ready, or status older than the spec),
CapabilityMismatch. ``Ready`` needs one eligible provider; ``Degraded`` says some are out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from signalbox_api import conditions, selectors
from signalbox_api.conditions import Condition, ConditionStatus, ConditionType, Reason
from signalbox_api.policy import PolicyProviderStatus, RoutingPolicySpec, RoutingPolicyStatus
from signalbox_api.provider import CircuitState, LLMProviderSpec, LLMProviderStatus, ModelSpec


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
    if spec.providers is not None:
        return [p.name for p in spec.providers]
    selector = spec.provider_selector
    if selector is None:
        return []
    return sorted(n for n, v in providers.items() if selectors.matches(selector, v.labels))


def _ready(view: ProviderView) -> bool:
    ready = conditions.find(view.status.conditions, ConditionType.READY)
    fresh = view.status.observed_generation == view.generation
    return ready is not None and ready.status == "True" and fresh


def _candidate_models(
    spec: RoutingPolicySpec, view: ProviderView, model: str | None
) -> list[ModelSpec]:
    if model is not None:
        found = view.spec.model(model)
        return [found] if found else []
    return list(view.spec.models)


def _meets_requirements(spec: RoutingPolicySpec, view: ProviderView, model: str | None) -> bool:
    req = spec.requirements
    if req is None:
        return True
    if req.tiers and view.spec.effective_tier() not in req.tiers:
        return False
    if not req.capabilities and req.min_context_window is None:
        return True
    if not view.spec.models:
        return True  # nothing declared: the provider's models are not described, so trust it
    for m in _candidate_models(spec, view, model):
        caps_ok = set(req.capabilities) <= set(m.capabilities)
        ctx_ok = req.min_context_window is None or (m.context_window or 0) >= req.min_context_window
        if caps_ok and ctx_ok:
            return True
    return False


def exclusion(
    spec: RoutingPolicySpec, view: ProviderView | None, model: str | None, now: datetime
) -> Reason:
    """Why a provider cannot take this policy's traffic now, or Reason.READY."""
    del now
    if view is None:
        return Reason.NOT_FOUND
    if view.spec.suspend:
        return Reason.SUSPENDED
    if view.status.circuit is not None and view.status.circuit.state == CircuitState.OPEN:
        return Reason.CIRCUIT_OPEN
    available = conditions.find(view.status.conditions, ConditionType.AVAILABLE)
    if available is not None and available.reason == Reason.RATE_LIMITED:
        return Reason.RATE_LIMITED
    if not _ready(view):
        return Reason.UNHEALTHY
    if not _meets_requirements(spec, view, model):
        return Reason.CAPABILITY_MISMATCH
    return Reason.READY


def compute(
    spec: RoutingPolicySpec,
    generation: int | None,
    providers: Mapping[str, ProviderView],
    previous: Sequence[Condition],
    now: datetime,
) -> RoutingPolicyStatus:
    refs = {p.name: p for p in spec.providers or []}
    rows = []
    for name in resolve_names(spec, providers):
        view = providers.get(name)
        ref = refs.get(name)
        reason = exclusion(spec, view, ref.model if ref else None, now)
        priority = (
            ref.priority
            if ref and ref.priority is not None
            else (view.spec.priority if view else 0)
        )
        weight = ref.weight if ref and ref.weight is not None else (view.spec.weight if view else 0)
        rows.append(
            PolicyProviderStatus(
                name=name,
                eligible=reason == Reason.READY,
                reason=reason,
                priority=priority,
                weight=weight,
            )
        )
    eligible = sorted(
        (r for r in rows if r.eligible), key=lambda r: (r.priority, -r.weight, r.name)
    )
    conds = list(previous)
    for type_, (status, why, message) in _verdicts(spec, rows, eligible).items():
        conds = conditions.set_condition(
            conds, type_, status, why, message, generation=generation, now=now
        )
    return RoutingPolicyStatus(
        observed_generation=generation,
        conditions=conds,
        providers=rows,
        active_provider=eligible[0].name if eligible else None,
        eligible=f"{len(eligible)}/{len(rows)}",
    )


Verdict = tuple[ConditionStatus, str, str]


def _verdicts(
    spec: RoutingPolicySpec,
    rows: Sequence[PolicyProviderStatus],
    eligible: Sequence[PolicyProviderStatus],
) -> dict[str, Verdict]:
    missing = [r.name for r in rows if r.reason == Reason.NOT_FOUND]
    out: dict[str, Verdict] = {ConditionType.ACCEPTED: ("True", Reason.VALID, "")}
    if missing:
        out[ConditionType.RESOLVED_REFS] = (
            "False",
            Reason.NOT_FOUND,
            "not found: " + ", ".join(missing),
        )
    elif not rows:
        what = "the selector matches no LLMProvider" if spec.provider_selector else "no providers"
        out[ConditionType.RESOLVED_REFS] = ("False", Reason.NOT_FOUND, what)
    else:
        out[ConditionType.RESOLVED_REFS] = ("True", Reason.RESOLVED, f"{len(rows)} provider(s)")
    if eligible:
        out[ConditionType.READY] = ("True", Reason.READY, f"{len(eligible)} eligible provider(s)")
    else:
        out[ConditionType.READY] = (
            "False",
            Reason.NO_ELIGIBLE_PROVIDERS,
            "no provider can take traffic",
        )
    out_rows = [f"{r.name} ({r.reason})" for r in rows if not r.eligible]
    if eligible and out_rows:
        out[ConditionType.DEGRADED] = ("True", Reason.FAILING_OVER, "out: " + ", ".join(out_rows))
    elif eligible:
        out[ConditionType.DEGRADED] = ("False", Reason.ALL_PROVIDERS_ELIGIBLE, "")
    else:
        out[ConditionType.DEGRADED] = ("False", Reason.NO_ELIGIBLE_PROVIDERS, "")
    return out
