"""Admission decisions for ``LLMProvider.spec.rateLimit``: rate windows, concurrency, priority.

Sending past a provider's declared limits only earns 429s that cost latency and can trip its
circuit, so the router decides before sending whether a request fits and, if not, how long to
wait. The decisions live here, apart from the async code, so they can be tested as tables: time is
a float of seconds passed in (any monotonic clock); nothing reads a clock, sleeps or locks (one
asyncio thread owns each object); every call is O(1) or amortised O(1). The router's waiters
use :class:`priority.PriorityQueueGate` so freed capacity goes to critical, then standard, then
sheddable.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from signalbox_api.provider import RateLimit, RateLimitAlgorithm

WINDOW = 60.0  # every limit is per minute
OVERSIZED_RETRY = 60.0  # retry_after for a cost above the whole budget, which can never fit
SLOT = 0.1  # SlidingWindow keeps one log entry per SLOT of the clock
_TOLERANCE = 1e-9  # relative slack so float rounding cannot refuse at the promised retry time


@dataclass(frozen=True)
class Admission:
    """A verdict; ``retry_after`` is also 0 when only concurrency refused (wait for a release)."""

    admitted: bool
    retry_after: float
    reason: str  # "requests", "tokens", "concurrency"; "" when admitted


ADMITTED = Admission(admitted=True, retry_after=0.0, reason="")


class Window(Protocol):
    """One per-minute budget; a cost is a request (1) or tokens."""

    def wait(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` fits (0.0: it fits now); records nothing."""

    def adjust(self, now: float, delta: float) -> None:
        """Charge (positive) or refund (negative) cost after the fact; never raises."""

    def admit(self, now: float, cost: float) -> float:
        """0.0 with ``cost`` recorded, or the seconds to wait with nothing recorded."""
        wait = self.wait(now, cost)
        if wait == 0.0:
            self.adjust(now, cost)
        return wait


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"limits must be positive, got {value!r}")
    return float(value)


class TokenBucket(Window):
    """Holds up to ``burst``, starts full and refills continuously at ``rate_per_minute / 60``/s.

    Default burst: one second's worth, ``max(1, ceil(rate / 60))``: providers enforce per-minute
    limits in sub-minute slices, so pacing avoids their 429s better than a minute's budget leaving
    at once (pass ``burst=rate_per_minute`` for that). A late charge may put the bucket in debt
    (below zero); a refund never fills it above ``burst``.
    """

    def __init__(self, rate_per_minute: float, burst: float | None = None) -> None:
        self.per_second = _positive(rate_per_minute) / WINDOW
        self.capacity = _positive(
            max(1, math.ceil(rate_per_minute / WINDOW)) if burst is None else burst
        )
        self._level, self._last = self.capacity, -math.inf

    def _refill(self, now: float) -> None:
        if now > self._last:  # a clock that steps back refills nothing
            self._level = min(self.capacity, self._level + (now - self._last) * self.per_second)
            self._last = now

    def wait(self, now: float, cost: float) -> float:
        self._refill(now)
        if cost > self.capacity:
            return OVERSIZED_RETRY
        deficit = cost - self._level
        return 0.0 if deficit <= self.capacity * _TOLERANCE else deficit / self.per_second

    def adjust(self, now: float, delta: float) -> None:
        self._refill(now)
        self._level = min(self.capacity, self._level - delta)


class SlidingWindow(Window):
    """An exact sliding log: a cost admitted at t counts until t + 60 s.

    Costs of one SLOT share an entry stamped with the latest of their times, so a cost may count
    up to 0.1 s too long but never too short: no 60 s interval holds more than the limit, and the
    log holds at most about 600 entries, which bounds the retry_after scan. A refund takes back
    the newest costs first and stops at an empty log.
    """

    def __init__(self, limit_per_minute: float) -> None:
        self.limit = _positive(limit_per_minute)
        self._log: deque[list[float]] = deque()  # [stamp, cost], oldest first
        self._total = 0.0

    def _evict(self, now: float) -> None:
        while self._log and self._log[0][0] + WINDOW <= now:  # same sum as wait()
            self._total -= self._log.popleft()[1]
        if not self._log:
            self._total = 0.0  # drop accumulated rounding

    def wait(self, now: float, cost: float) -> float:
        self._evict(now)
        if cost > self.limit:
            return OVERSIZED_RETRY
        excess, slack = self._total + cost - self.limit, self.limit * _TOLERANCE
        if excess <= slack:
            return 0.0
        for stamp, amount in self._log:  # oldest first, until enough has left
            excess -= amount
            if excess <= slack:
                return stamp + WINDOW - now
        return WINDOW  # not reached: cost <= limit fits an empty log

    def adjust(self, now: float, delta: float) -> None:
        self._evict(now)
        last = self._log[-1] if self._log else None
        if delta > 0 and last is not None and (now <= last[0] or now // SLOT == last[0] // SLOT):
            last[0], last[1] = max(last[0], now), last[1] + delta
        elif delta > 0:
            self._log.append([now, delta])
        self._total += max(0.0, delta)
        refund = -delta
        while refund > 0 and self._log:
            last = self._log[-1]
            taken = min(refund, last[1])
            last[1], self._total, refund = last[1] - taken, self._total - taken, refund - taken
            if last[1] <= 0:
                self._log.pop()


class FixedWindow(Window):
    """A counter per clock minute [60k, 60k + 60); late charges may exceed it, refunds stop at 0."""

    def __init__(self, limit_per_minute: float) -> None:
        self.limit = _positive(limit_per_minute)
        self._minute, self._used = -math.inf, 0.0

    def _roll(self, now: float) -> None:
        if now // WINDOW > self._minute:  # a clock that steps back stays in the newer minute
            self._minute, self._used = now // WINDOW, 0.0

    def wait(self, now: float, cost: float) -> float:
        self._roll(now)
        if cost > self.limit:
            return OVERSIZED_RETRY
        if self._used + cost <= self.limit * (1 + _TOLERANCE):
            return 0.0
        return (self._minute + 1) * WINDOW - now

    def adjust(self, now: float, delta: float) -> None:
        self._roll(now)
        self._used = max(0.0, self._used + delta)


def _window(algorithm: RateLimitAlgorithm, limit: int | None, burst: int | None) -> Window | None:
    if limit is None:
        return None
    if algorithm == RateLimitAlgorithm.SLIDING_WINDOW:
        return SlidingWindow(limit)
    if algorithm == RateLimitAlgorithm.FIXED_WINDOW:
        return FixedWindow(limit)
    return TokenBucket(limit, burst)


@dataclass
class ProviderLimiter:
    """One provider's limits in this router process: requests, tokens and concurrency.

    From a spec with TokenBucket, ``burst`` sizes the request bucket (default as in
    :class:`TokenBucket`) while the token bucket holds a whole minute's tokens, since one request
    may need thousands. SlidingWindow and FixedWindow allow a minute's budget at once anyway.
    """

    requests: Window | None = None
    tokens: Window | None = None
    max_concurrency: int | None = None
    _in_flight: int = field(default=0, init=False)

    @classmethod
    def from_spec(cls, rate_limit: RateLimit | None) -> ProviderLimiter:
        if rate_limit is None:
            return cls()
        algorithm, tpm = rate_limit.algorithm, rate_limit.tokens_per_minute
        return cls(
            requests=_window(algorithm, rate_limit.requests_per_minute, rate_limit.burst),
            tokens=_window(algorithm, tpm, tpm),
            max_concurrency=rate_limit.max_concurrency,
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def unlimited(self) -> bool:
        return self.requests is None and self.tokens is None and self.max_concurrency is None

    def try_acquire(self, now: float, estimated_tokens: int) -> Admission:
        """Admit if every limit admits; a refusal records nothing and names the longest wait."""
        requests, tokens, cost = self.requests, self.tokens, max(0, estimated_tokens)
        busy = self.max_concurrency is not None and self._in_flight >= self.max_concurrency
        wait_requests = requests.wait(now, 1) if requests is not None else 0.0
        wait_tokens = tokens.wait(now, cost) if tokens is not None else 0.0
        if busy or wait_requests > 0.0 or wait_tokens > 0.0:
            refusals = [(0.0, "concurrency")] if busy else []
            refusals += [
                (wait, reason)
                for wait, reason in ((wait_requests, "requests"), (wait_tokens, "tokens"))
                if wait > 0.0
            ]
            wait, reason = max(refusals, key=lambda refusal: refusal[0])
            return Admission(admitted=False, retry_after=wait, reason=reason)
        if requests is not None:
            requests.adjust(now, 1)
        if tokens is not None:
            tokens.adjust(now, cost)
        self._in_flight += 1
        return ADMITTED

    def release(self, now: float, estimated_tokens: int, actual_tokens: int | None = None) -> None:
        """Free the concurrency slot; charge or refund ``actual - estimated`` tokens if known."""
        self._in_flight = max(0, self._in_flight - 1)
        if actual_tokens is not None and self.tokens is not None:
            self.tokens.adjust(now, max(0, actual_tokens) - max(0, estimated_tokens))
