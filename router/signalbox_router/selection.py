"""Which providers may serve a request, and in what order. Pure.

A model name resolves to a RoutingPolicy (exact name first, then glob; the oldest policy wins
a conflict) or, without one, to the providers that declare the model or alias. Providers are
filtered by readiness, the local breaker, rate-limit cooling, the policy's requirements and
what the request itself needs; the survivors are grouped by priority (lower first) and each
group is ordered by the policy's strategy. Failover walks the resulting list in order.
"""

from __future__ import annotations

import fnmatch
import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from typing import Any

from signalbox_api import selectors
from signalbox_api.policy import Failover, ProviderRef, RoutingPolicySpec, Strategy
from signalbox_api.primitives import parse_money
from signalbox_api.provider import Capability, Cost, ModelSpec
from signalbox_router.snapshot import PolicyEntry, ProviderEntry, Snapshot


@dataclass(slots=True)
class Needs:
    """What the request requires of a model."""

    capabilities: frozenset[Capability] = frozenset()
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Candidate:
    provider: str
    model: str  # the upstream model name
    priority: int
    weight: int
    cost: Decimal | None = None  # input + output price per million tokens
    context_window: int | None = None
    price: Cost | None = None  # the declared prices, for metering


@dataclass(frozen=True)
class Excluded:
    provider: str
    reason: str


@dataclass(slots=True)
class Route:
    model: str
    policy: str | None
    strategy: Strategy
    ordered: tuple[Candidate, ...]
    excluded: tuple[Excluded, ...]
    failover: Failover


@dataclass
class LocalView:
    """The router's own, per-process knowledge, read by the pure functions."""

    breaker_open: Callable[[str], bool] = lambda _name: False
    cooling: Callable[[str], bool] = lambda _name: False  # told to back off (429)
    in_flight: Mapping[str, int] = field(default_factory=dict)
    last_used: Mapping[str, float] = field(default_factory=dict)
    success_rate: Mapping[str, float] = field(default_factory=dict)
    latency: Mapping[str, float] = field(default_factory=dict)
    turn: int = 0  # a counter for round robin
    rng: random.Random = field(default_factory=random.Random)


_MISSING: Any = object()


class UnknownModel(LookupError):
    """No policy and no provider serves this model name."""


def find_policy(model: str, policies: Sequence[PolicyEntry]) -> PolicyEntry | None:
    by_age = sorted(policies, key=lambda p: (p.created, p.name))
    exact = [p for p in by_age if model in p.spec.models]
    if exact:
        return exact[0]
    globbed = [p for p in by_age if any(fnmatch.fnmatchcase(model, m) for m in p.spec.models)]
    return globbed[0] if globbed else None


def _declared(entry: ProviderEntry, name: str) -> ModelSpec | None:
    return entry.spec.model(name)


def _cost(model: ModelSpec | None) -> Decimal | None:
    if model is None or model.cost is None:
        return None
    return parse_money(model.cost.input_per_m_tok) + parse_money(model.cost.output_per_m_tok)


def _check(
    entry: ProviderEntry,
    model: ModelSpec | None,
    needs: Needs,
    policy: RoutingPolicySpec | None,
) -> str | None:
    """Why ``entry`` cannot serve, as far as the snapshot tells (the router's own breaker and
    the request's size are checked per request), or None."""
    if entry.spec.suspend:
        return "Suspended"
    if entry.ready is False:
        return f"NotReady ({entry.reason})" if entry.reason else "NotReady"
    if not entry.endpoints:
        return "NoEndpoints"
    req = policy.requirements if policy else None
    if req and req.tiers and entry.spec.effective_tier() not in req.tiers:
        return "TierNotAllowed"
    wanted = set(needs.capabilities) | set(req.capabilities if req else ())
    if model is not None:
        if not wanted <= set(model.capabilities) and model.capabilities:
            return "CapabilityMismatch"
        minimum = (req.min_context_window or 0) if req else 0
        if model.context_window is not None and model.context_window < minimum:
            return "ContextTooSmall"
    return None


def _candidate(
    entry: ProviderEntry,
    requested: str,
    ref: ProviderRef | None,
    wanted: frozenset[str],
    *,
    in_policy: bool,
) -> tuple[str, ModelSpec | None] | None:
    """The upstream model for ``requested`` on this provider, or None if it is not served.

    A policy's reference may name the model; else the requested name (or alias) when the
    provider declares it; else, for a virtual name such as ``chat-default``, the first declared
    model with the capabilities needed; a provider that declares nothing gets the name as is.
    """
    if ref is not None and ref.model:
        return ref.model, _declared(entry, ref.model)
    declared = _declared(entry, requested)
    if declared is not None:
        return declared.name, declared
    if not entry.spec.models:
        return requested, None
    if in_policy:
        fitting = next((m for m in entry.spec.models if wanted <= set(m.capabilities)), None)
        if fitting is not None:
            return fitting.name, fitting
    return None


@dataclass(frozen=True)
class Plan:
    """The part of a route that depends only on the snapshot and the capabilities needed."""

    policy: str | None
    strategy: Strategy
    eligible: tuple[Candidate, ...]
    excluded: tuple[Excluded, ...]
    failover: Failover
    model: str = ""

    @functools.cached_property
    def groups(self) -> tuple[tuple[Candidate, ...], ...]:
        return priority_groups(self.eligible)

    @functools.cached_property
    def fixed(self) -> Route | None:
        """The route while nobody is excluded, when no strategy can change the order (every
        priority group has one provider): shared by the requests that get it."""
        if any(len(group) > 1 for group in self.groups):
            return None
        ordered = tuple(c for group in self.groups for c in group)
        return Route(self.model, self.policy, self.strategy, ordered, self.excluded, self.failover)


def plan(model: str, needs: Needs, snap: Snapshot) -> Plan:
    """Providers that could serve ``model`` at all; raises UnknownModel when none could."""
    policy = snap.policy_cache.get(model, _MISSING)
    if policy is _MISSING:
        policy = snap.policy_cache[model] = find_policy(model, snap.policies)
    eligible: list[Candidate] = []
    excluded: list[Excluded] = []
    if policy is not None:
        spec = policy.spec
        refs = {r.name: r for r in spec.providers or []}
        if spec.providers is not None:
            names = [r.name for r in spec.providers]
        else:
            selector = spec.provider_selector
            names = sorted(
                n
                for n, e in snap.providers.items()
                if selector is not None and selectors.matches(selector, e.labels)
            )
        for name in names:
            entry = snap.providers.get(name)
            if entry is None:
                excluded.append(Excluded(name, "NotFound"))
                continue
            _sort(_consider(entry, model, needs, spec, refs.get(name)), eligible, excluded)
        failover, strategy = spec.failover, spec.strategy
    else:
        declaring = [e for e in snap.providers.values() if _declared(e, model) is not None]
        if not declaring:
            raise UnknownModel(model)
        for entry in sorted(declaring, key=lambda e: e.name):
            _sort(_consider(entry, model, needs, None, None), eligible, excluded)
        failover, strategy = Failover(), Strategy.PRIORITY
    return Plan(
        policy.name if policy else None,
        strategy,
        tuple(eligible),
        tuple(excluded),
        failover,
        model,
    )


_PLAN_CACHE_LIMIT = 4096


def route(model: str, needs: Needs, snap: Snapshot, view: LocalView) -> Route:
    """The ordered providers for a request; raises UnknownModel when nothing serves ``model``."""
    key = (model, needs.capabilities)
    cached = snap.plan_cache.get(key)
    if cached is None:
        if len(snap.plan_cache) > _PLAN_CACHE_LIMIT:
            snap.plan_cache.clear()
        cached = snap.plan_cache[key] = plan(model, Needs(needs.capabilities), snap)
    ordered: list[Candidate] = []
    dropped: list[Excluded] = []
    for group in cached.groups:
        fit = []
        for cand in group:
            reason = _dynamic_check(cand, needs, view)
            if reason is None:
                fit.append(cand)
            else:
                dropped.append(Excluded(cand.provider, reason))
        ordered += fit if len(fit) < 2 else _ORDER[cached.strategy](fit, view)
    if not dropped and cached.fixed is not None:
        return cached.fixed
    return Route(
        model=model,
        policy=cached.policy,
        strategy=cached.strategy,
        ordered=tuple(ordered),
        excluded=cached.excluded + tuple(dropped) if dropped else cached.excluded,
        failover=cached.failover,
    )


def _dynamic_check(cand: Candidate, needs: Needs, view: LocalView) -> str | None:
    if cand.context_window is not None and cand.context_window < needs.prompt_tokens:
        return "ContextTooSmall"
    if view.breaker_open(cand.provider):
        return "BreakerOpen"
    if view.cooling(cand.provider):
        return "RateLimited"
    return None


def _sort(item: Candidate | Excluded, eligible: list[Candidate], excluded: list[Excluded]) -> None:
    if isinstance(item, Candidate):
        eligible.append(item)
    else:
        excluded.append(item)


def _consider(
    entry: ProviderEntry,
    model: str,
    needs: Needs,
    spec: RoutingPolicySpec | None,
    ref: ProviderRef | None,
) -> Candidate | Excluded:
    wanted = frozenset(needs.capabilities) | frozenset(
        spec.requirements.capabilities if spec and spec.requirements else ()
    )
    found = _candidate(entry, model, ref, wanted, in_policy=spec is not None)
    if found is None:
        return Excluded(entry.name, "ModelNotServed")
    upstream, declared = found
    reason = _check(entry, declared, needs, spec)
    if reason is not None:
        return Excluded(entry.name, reason)
    priority = ref.priority if ref and ref.priority is not None else entry.spec.priority
    weight = ref.weight if ref and ref.weight is not None else entry.spec.weight
    context = declared.context_window if declared else None
    price = declared.cost if declared else None
    return Candidate(entry.name, upstream, priority, weight, _cost(declared), context, price)


def priority_groups(cands: Sequence[Candidate]) -> tuple[tuple[Candidate, ...], ...]:
    """Candidates grouped by priority, lowest first; each group sorted by provider name."""
    by_priority = sorted(cands, key=lambda c: (c.priority, c.provider))
    return tuple(tuple(group) for _, group in groupby(by_priority, key=lambda c: c.priority))


def order(cands: Sequence[Candidate], strategy: Strategy, view: LocalView) -> list[Candidate]:
    """Priority groups, lowest first; each group ordered by ``strategy``."""
    out: list[Candidate] = []
    for group in priority_groups(cands):
        out += _ORDER[strategy](list(group), view)
    return out


def _rotate(group: list[Candidate], view: LocalView) -> list[Candidate]:
    k = view.turn % len(group)
    return group[k:] + group[:k]


def _weighted(group: list[Candidate], view: LocalView) -> list[Candidate]:
    pool, out = list(group), []
    while pool:
        weights = [max(c.weight, 0) for c in pool]
        pick = view.rng.choices(pool, weights=weights)[0] if sum(weights) else pool[0]
        out.append(pick)
        pool.remove(pick)
    return out


def _health(group: list[Candidate], view: LocalView) -> list[Candidate]:
    return sorted(
        group,
        key=lambda c: (-view.success_rate.get(c.provider, 1.0), view.latency.get(c.provider, 0.0)),
    )


def _lru(group: list[Candidate], view: LocalView) -> list[Candidate]:
    return sorted(group, key=lambda c: view.last_used.get(c.provider, 0.0))


def _least_loaded(group: list[Candidate], view: LocalView) -> list[Candidate]:
    return sorted(group, key=lambda c: (view.in_flight.get(c.provider, 0), -c.weight))


def _cheapest(group: list[Candidate], view: LocalView) -> list[Candidate]:
    del view
    return sorted(group, key=lambda c: (c.cost is None, c.cost or Decimal(0)))


_ORDER: Mapping[Strategy, Callable[[list[Candidate], LocalView], list[Candidate]]] = {
    Strategy.PRIORITY: _rotate,  # equal priorities share the load
    Strategy.ROUND_ROBIN: _rotate,
    Strategy.WEIGHTED: _weighted,
    Strategy.HEALTH_BASED: _health,
    Strategy.LEAST_RECENTLY_USED: _lru,
    Strategy.LEAST_LOADED: _least_loaded,
    Strategy.LOWEST_COST: _cheapest,
}
