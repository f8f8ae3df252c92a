"""In what order eligible providers take traffic: priority groups, each ordered by a strategy.

Shared by the router, which orders every request with its own live figures, and the operator,
whose ``status.activeProvider`` is the first of the same order computed with what the operator
knows. Lower priority values go first; a lower group is used only when the higher one has
nobody eligible. Inside a group:

- ``Priority`` and ``RoundRobin`` rotate by a request counter; at rest (turn 0, as the operator
  shows it) the order is by provider name.
- ``Weighted`` draws by weight; without a random source (the operator) the heaviest goes first,
  then by name.
- ``HealthBased``: highest success rate, then lowest latency (the router's own figures; the
  operator's are its probes'); unknown counts as perfect.
- ``LeastRecentlyUsed`` and ``LeastLoaded`` read the router's own history and in-flight counts;
  with none (the operator) they give name order and heaviest-first.
- ``LowestCost``: the declared input plus output price, cheapest first, unpriced last.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from typing import TYPE_CHECKING, Protocol, TypeVar

from signalbox_api.policy import Strategy

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison


class Ranked(Protocol):
    """A provider that may take the request, as the strategies see it."""

    @property
    def provider(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def cost(self) -> Decimal | None: ...


class Figures(Protocol):
    """What the strategies may read besides the candidates themselves."""

    @property
    def turn(self) -> int: ...
    @property
    def rng(self) -> random.Random | None: ...
    @property
    def in_flight(self) -> Mapping[str, int]: ...
    @property
    def last_used(self) -> Mapping[str, float]: ...
    @property
    def success_rate(self) -> Mapping[str, float]: ...
    @property
    def latency(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class AtRest:
    """Figures for a process that sends no traffic (the operator): no turn, no draw, no load."""

    turn: int = 0
    rng: random.Random | None = None
    in_flight: Mapping[str, int] = field(default_factory=dict)
    last_used: Mapping[str, float] = field(default_factory=dict)
    success_rate: Mapping[str, float] = field(default_factory=dict)
    latency: Mapping[str, float] = field(default_factory=dict)


R = TypeVar("R", bound=Ranked)


def priority_groups(cands: Sequence[R]) -> tuple[tuple[R, ...], ...]:
    """Candidates grouped by priority, lowest first; each group sorted by provider name."""
    by_priority = sorted(cands, key=lambda c: (c.priority, c.provider))
    return tuple(tuple(group) for _, group in groupby(by_priority, key=lambda c: c.priority))


def order(cands: Sequence[R], strategy: Strategy, figures: Figures) -> list[R]:
    """Priority groups, lowest first; each group ordered by ``strategy``."""
    out: list[R] = []
    for group in priority_groups(cands):
        out += in_group(list(group), strategy, figures)
    return out


def in_group(group: list[R], strategy: Strategy, figures: Figures) -> list[R]:
    """One priority group (sorted by name) ordered by ``strategy``."""
    if len(group) < 2:
        return group
    if strategy in (Strategy.PRIORITY, Strategy.ROUND_ROBIN):  # equal priorities share load
        k = figures.turn % len(group)
        return group[k:] + group[:k]
    if strategy == Strategy.WEIGHTED:
        return _weighted(group, figures.rng)
    key = _KEYS[strategy]
    return sorted(group, key=lambda c: key(c, figures))


def _weighted(group: list[R], rng: random.Random | None) -> list[R]:
    if rng is None:
        return sorted(group, key=lambda c: -c.weight)
    pool, out = list(group), []
    while pool:
        weights = [max(c.weight, 0) for c in pool]
        pick = rng.choices(pool, weights=weights)[0] if sum(weights) else pool[0]
        out.append(pick)
        pool.remove(pick)
    return out


def _health(c: Ranked, f: Figures) -> tuple[float, float]:
    return (-f.success_rate.get(c.provider, 1.0), f.latency.get(c.provider, 0.0))


def _lru(c: Ranked, f: Figures) -> float:
    return f.last_used.get(c.provider, 0.0)


def _least_loaded(c: Ranked, f: Figures) -> tuple[int, int]:
    return (f.in_flight.get(c.provider, 0), -c.weight)


def _cheapest(c: Ranked, f: Figures) -> tuple[bool, Decimal]:
    del f
    return (c.cost is None, c.cost or Decimal(0))


_KEYS: Mapping[Strategy, Callable[[Ranked, Figures], SupportsRichComparison]] = {
    Strategy.HEALTH_BASED: _health,
    Strategy.LEAST_RECENTLY_USED: _lru,
    Strategy.LEAST_LOADED: _least_loaded,
    Strategy.LOWEST_COST: _cheapest,
}
