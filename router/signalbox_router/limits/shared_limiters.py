"""Provider limiters whose request and token budgets are shared through Redis.

A limiter here is an ordinary :class:`limiters.ProviderLimiter` (the request path cannot tell)
whose windows are :class:`leases.LeasedWindow`; :mod:`shared_budget` keeps them supplied. Each
window's fallback is this replica's share of the limit (limit / live replicas), and
``maxConcurrency``, which cannot be leased by the minute, is split the same way. When the count
of live replicas changes, :func:`resize` moves every share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from signalbox_api.provider import RateLimit, RateLimitAlgorithm
from signalbox_router.limits import leases, limiters

# Seconds a lease may be spent. Redis counts a window's lease until a minute after its last
# possible use, so long leases cost nothing there but a later return; a token bucket's lease
# spent late passes its life's worth more of the rate in a minute, so it is kept short.
LIFE = {
    RateLimitAlgorithm.TOKEN_BUCKET: 2.0,
    RateLimitAlgorithm.SLIDING_WINDOW: 5.0,
    RateLimitAlgorithm.FIXED_WINDOW: 5.0,
}
ALGORITHMS = {
    RateLimitAlgorithm.TOKEN_BUCKET: "tb",
    RateLimitAlgorithm.SLIDING_WINDOW: "sw",
    RateLimitAlgorithm.FIXED_WINDOW: "fw",
}


@dataclass(frozen=True)
class Budget:
    """One leased window and what Redis needs to know of it."""

    key: str
    algorithm: str
    limit: int
    burst: int | None
    capacity: float
    window: leases.LeasedWindow

    def args(self) -> list[str]:
        return [self.algorithm, repr(self.limit), repr(self.capacity)]


@dataclass
class SharedLimiter:
    """A provider's limiter, the spec it was built from, and its budgets."""

    spec: RateLimit
    limiter: limiters.ProviderLimiter
    budgets: tuple[Budget, ...]


def build(key: str, spec: RateLimit, replicas: int, wake: Callable[[], None]) -> SharedLimiter:
    """A limiter spending budgets kept in Redis under ``key``:requests and ``key``:tokens."""
    requests = _budget(f"{key}:requests", spec, spec.requests_per_minute, spec.burst, replicas)
    tokens = _budget(
        f"{key}:tokens", spec, spec.tokens_per_minute, spec.tokens_per_minute, replicas
    )
    budgets = tuple(b for b in (requests, tokens) if b is not None)
    for budget in budgets:
        budget.window.wake = wake
    limiter = limiters.ProviderLimiter(
        requests=requests.window if requests else None,
        tokens=tokens.window if tokens else None,
        max_concurrency=share(spec.max_concurrency, replicas),
    )
    return SharedLimiter(spec, limiter, budgets)


def _budget(
    key: str, spec: RateLimit, limit: int | None, burst: int | None, replicas: int
) -> Budget | None:
    if limit is None:
        return None
    bucket = spec.algorithm == RateLimitAlgorithm.TOKEN_BUCKET
    capacity = limiters.TokenBucket(limit, burst).capacity if bucket else float(limit)
    window = leases.LeasedWindow(
        limit,
        _cap(capacity, replicas),
        fallback(spec.algorithm, limit, burst, replicas),
        LIFE[spec.algorithm],
    )
    return Budget(key, ALGORITHMS[spec.algorithm], limit, burst, capacity, window)


def resize(shared: SharedLimiter, replicas: int, *, fallbacks: bool) -> None:
    """Follow a new count of live replicas (the fallback windows too when ``fallbacks``)."""
    shared.limiter.max_concurrency = share(shared.spec.max_concurrency, replicas)
    for b in shared.budgets:
        b.window.cap = _cap(b.capacity, replicas)
        if fallbacks:
            b.window.fallback = fallback(shared.spec.algorithm, b.limit, b.burst, replicas)


def _cap(capacity: float, replicas: int) -> float:
    """The largest batch one replica takes: half its share, so others always find some."""
    return max(1.0, math.ceil(capacity / (2 * replicas)))


def fallback(
    algorithm: RateLimitAlgorithm, limit: int, burst: int | None, replicas: int
) -> limiters.Window:
    """This replica's share of a limit, to spend alone while Redis is away."""
    part = limit / replicas
    if algorithm == RateLimitAlgorithm.SLIDING_WINDOW:
        return limiters.SlidingWindow(part)
    if algorithm == RateLimitAlgorithm.FIXED_WINDOW:
        return limiters.FixedWindow(part)
    return limiters.TokenBucket(
        part, max(1.0, limiters.TokenBucket(limit, burst).capacity / replicas)
    )


def share(limit: int | None, replicas: int) -> int | None:
    """Each replica's part of ``maxConcurrency`` (at least 1)."""
    return None if limit is None else max(1, limit // max(1, replicas))
