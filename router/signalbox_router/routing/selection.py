"""Which providers may serve a request, and in what order. Pure.

A model name resolves to a RoutingPolicy (exact name first, then glob; the oldest policy wins
a conflict) or, without one, to the providers that declare the model or alias. Which providers
are eligible, and in what order they go, is the rule the operator writes into policy status
(``signalbox_api.eligibility`` and ``signalbox_api.ordering``); this module applies it to one
request, in Kubernetes mode to the operator's provider verdicts, and adds what only the router
knows: a provider's addresses, the prompt's size, its local breaker and 429 cooling. Failover
walks the resulting list in order.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from signalbox_api import eligibility, ordering
from signalbox_api.conditions import Reason
from signalbox_api.policy import Failover, ProviderRef, RoutingPolicySpec, Strategy
from signalbox_api.primitives import parse_money
from signalbox_api.provider import Capability, Cost, ModelSpec
from signalbox_router.failures import UnknownModel
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot


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
    # What the request needs that no provider of its model offers, when that alone leaves
    # nobody (its client's 400, not a 503): see ``plan``.
    unmet: frozenset[Capability] = frozenset()


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


def find_policy(model: str, policies: Sequence[PolicyEntry]) -> PolicyEntry | None:
    return eligibility.find_policy(model, policies)


def _state(entry: ProviderEntry) -> Reason | None:
    """The provider's own state: suspended, or what the operator's verdict says (None: usable).
    A verdict reason outside the rule's own (e.g. a Ready condition's ProbeFailed) is Unhealthy."""
    if entry.spec.suspend:
        return Reason.SUSPENDED
    if entry.ready is False:
        return Reason(entry.reason) if entry.reason in _STATE_REASONS else Reason.UNHEALTHY
    return None


_STATE_REASONS = frozenset(eligibility.STATE_REASONS)


def _cost(model: ModelSpec | None) -> Decimal | None:
    if model is None or model.cost is None:
        return None
    return parse_money(model.cost.input_per_m_tok) + parse_money(model.cost.output_per_m_tok)


@dataclass(frozen=True)
class Plan:
    """The part of a route that depends only on the snapshot and the capabilities needed."""

    policy: str | None
    strategy: Strategy
    eligible: tuple[Candidate, ...]
    excluded: tuple[Excluded, ...]
    failover: Failover
    model: str = ""
    unmet: frozenset[Capability] = frozenset()

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
        return Route(
            self.model,
            self.policy,
            self.strategy,
            ordered,
            self.excluded,
            self.failover,
            self.unmet,
        )


def plan(model: str, needs: Needs, snap: Snapshot) -> Plan:
    """Providers that could serve ``model`` at all; raises UnknownModel when none could."""
    policy = eligibility.find_policy(model, snap.policies)
    eligible: list[Candidate] = []
    excluded: list[Excluded] = []
    if policy is not None:
        spec = policy.spec
        refs = {r.name: r for r in spec.providers or []}
        labels = {} if spec.provider_selector is None else snap.labels()
        for name in eligibility.resolve(spec, labels):
            entry = snap.providers.get(name)
            found = _consider(name, entry, model, needs, spec=spec, ref=refs.get(name))
            _sort(found, eligible, excluded)
        failover, strategy = spec.failover, spec.strategy
    else:
        declaring = [e for e in snap.providers.values() if e.spec.model(model) is not None]
        if not declaring:
            raise UnknownModel(model)
        for entry in sorted(declaring, key=lambda e: e.name):
            _sort(_consider(entry.name, entry, model, needs), eligible, excluded)
        failover, strategy = Failover(), Strategy.PRIORITY
    unmet: frozenset[Capability] = frozenset()
    if not eligible and needs.capabilities and plan(model, Needs(), snap).eligible:
        unmet = needs.capabilities  # without them the model has providers: the request is at fault
    return Plan(
        policy.name if policy else None,
        strategy,
        tuple(eligible),
        tuple(excluded),
        failover,
        model,
        unmet,
    )


def route(model: str, needs: Needs, snap: Snapshot, view: LocalView) -> Route:
    """The ordered providers for a request; raises UnknownModel when nothing serves ``model``.

    Plans are cached per snapshot for names that resolve (a policy's name or glob, a declared
    model or alias), in a cache of bounded size; a name nothing serves is never stored."""
    key = (model, needs.capabilities)
    cached = snap.plan_cache.get(key)
    if cached is None:
        cached = plan(model, Needs(needs.capabilities), snap)
        snap.plan_cache.put(key, cached)
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
        ordered += fit if len(fit) < 2 else ordering.in_group(fit, cached.strategy, view)
    if not dropped and cached.fixed is not None:
        return cached.fixed
    return Route(
        model=model,
        policy=cached.policy,
        strategy=cached.strategy,
        ordered=tuple(ordered),
        excluded=cached.excluded + tuple(dropped) if dropped else cached.excluded,
        failover=cached.failover,
        unmet=cached.unmet,
    )


def _dynamic_check(cand: Candidate, needs: Needs, view: LocalView) -> str | None:
    """The router's own, per-request checks: the prompt's size (a context window the model
    does not declare is taken to hold it), the local breaker and 429 cooling."""
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
    name: str,
    entry: ProviderEntry | None,
    model: str,
    needs: Needs,
    *,
    spec: RoutingPolicySpec | None = None,
    ref: ProviderRef | None = None,
) -> Candidate | Excluded:
    """The shared rule (``eligibility.verdict``) for one provider, then the router's own
    knowledge of its addresses."""
    found = eligibility.verdict(
        entry.spec if entry else None,
        _state(entry) if entry else None,
        model,
        ref,
        requirements=spec.requirements if spec else None,
        needs=needs.capabilities,
        in_policy=spec is not None,
    )
    if entry is None or not found.eligible:
        return Excluded(name, found.reason)
    if not entry.endpoints:
        return Excluded(name, "NoEndpoints")
    priority, weight = eligibility.effective(ref, entry.spec)
    declared = found.declared
    context = declared.context_window if declared else None
    price = declared.cost if declared else None
    upstream = found.model or model
    return Candidate(name, upstream, priority, weight, _cost(declared), context, price)


def priority_groups(cands: Sequence[Candidate]) -> tuple[tuple[Candidate, ...], ...]:
    """Candidates grouped by priority, lowest first; each group sorted by provider name."""
    return ordering.priority_groups(cands)


def order(cands: Sequence[Candidate], strategy: Strategy, view: LocalView) -> list[Candidate]:
    """Priority groups, lowest first; each group ordered by ``strategy`` (``ordering``)."""
    return ordering.order(cands, strategy, view)
