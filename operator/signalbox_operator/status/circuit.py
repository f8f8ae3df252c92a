"""The circuit breaker and health tracking for one provider, as a pure state machine.

``observe`` folds one probe outcome into the state; ``advance`` moves an open circuit to
half-open once its time is up. The clock is always passed in, so the whole machine is tested
as tables.

- Closed → Open after ``failureThreshold`` consecutive failures.
- Open → HalfOpen after the open duration, which doubles with each trip up to the maximum, or
  at the first probe that succeeds meanwhile: probes go on while the circuit is open, so a
  provider that healed is not kept out for the rest of a long open period.
- HalfOpen → Closed after ``healthyThreshold`` successes; any failure re-opens it.
- AuthFailed opens at once with the longest open duration.
- RateLimited is no failure: the provider is unavailable until Retry-After (or a default), cut
  to ``maxRetryAfter``; the next success lifts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from signalbox_api.primitives import parse_duration
from signalbox_api.provider import CircuitOverride, CircuitState, LLMProviderSpec
from signalbox_providers.outcomes import Outcome

DEFAULT_RATE_LIMIT_COOLDOWN = 30.0
DEFAULT_MAX_RETRY_AFTER = 600.0
CONFIRM_SECONDS = 1.0  # the probe cadence while a verdict is in doubt (see ``in_doubt``)


@dataclass(frozen=True)
class CircuitSettings:
    failure_threshold: int = 3
    open_duration: float = 30.0
    max_open_duration: float = 600.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    rate_limit_cooldown: float = DEFAULT_RATE_LIMIT_COOLDOWN
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    @classmethod
    def from_spec(cls, spec: LLMProviderSpec) -> CircuitSettings:
        cb, hc = spec.circuit_breaker, spec.health_check
        return cls(
            failure_threshold=cb.failure_threshold,
            open_duration=parse_duration(cb.open_duration),
            max_open_duration=parse_duration(cb.max_open_duration),
            healthy_threshold=hc.healthy_threshold,
            unhealthy_threshold=hc.unhealthy_threshold,
            max_retry_after=parse_duration(cb.max_retry_after),
        )


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    since: datetime | None = None
    open_until: datetime | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    trips: int = 0
    healthy: bool | None = None  # None until the first verdict
    last_failure: Outcome | None = None
    rate_limited_until: datetime | None = None

    def rate_limited(self, now: datetime) -> bool:
        return self.rate_limited_until is not None and now < self.rate_limited_until


def open_duration(trips: int, settings: CircuitSettings) -> float:
    """Seconds an open circuit stays open on its ``trips``-th consecutive trip."""
    grown: float = settings.open_duration * 2.0 ** min(max(0, trips - 1), 32)
    return min(grown, settings.max_open_duration)


def advance(c: Circuit, now: datetime) -> Circuit:
    """Open → HalfOpen once the open duration has passed; otherwise unchanged."""
    if c.state == CircuitState.OPEN and c.open_until is not None and now >= c.open_until:
        return _half_open(c, now)
    return c


def _half_open(c: Circuit, now: datetime) -> Circuit:
    return dataclasses.replace(
        c, state=CircuitState.HALF_OPEN, since=now, open_until=None, consecutive_successes=0
    )


def in_doubt(c: Circuit, settings: CircuitSettings) -> bool:
    """Whether the next probes decide a verdict: a first failure not yet confirmed, a half-open
    circuit, or a provider coming back. These are probed every ``CONFIRM_SECONDS`` rather than
    at the interval, so status follows a fault or a recovery in seconds; the burst is bounded by
    the thresholds."""
    if c.state == CircuitState.HALF_OPEN:
        return True
    if c.state == CircuitState.CLOSED and 0 < c.consecutive_failures < settings.failure_threshold:
        return True
    return c.healthy is False and c.consecutive_successes > 0


def observe(
    c: Circuit,
    outcome: Outcome,
    now: datetime,
    settings: CircuitSettings,
    retry_after: float | None = None,
) -> Circuit:
    """Fold one probe outcome into the circuit."""
    c = advance(c, now)
    if c.since is None:
        c = dataclasses.replace(c, since=now)
    if outcome == Outcome.SUCCESS:
        if c.state == CircuitState.OPEN:
            c = _half_open(c, now)
        return _success(c, now, settings)
    if outcome == Outcome.RATE_LIMITED:
        wait = settings.rate_limit_cooldown if retry_after is None else retry_after
        wait = min(wait, settings.max_retry_after)
        return dataclasses.replace(c, rate_limited_until=now + timedelta(seconds=wait))
    return _failure(c, outcome, now, settings)


def _success(c: Circuit, now: datetime, settings: CircuitSettings) -> Circuit:
    successes = c.consecutive_successes + 1
    healthy = c.healthy
    if healthy is None or (not healthy and successes >= settings.healthy_threshold):
        healthy = True
    c = dataclasses.replace(
        c,
        consecutive_successes=successes,
        consecutive_failures=0,
        healthy=healthy,
        rate_limited_until=None,  # it answers: whatever it asked before is over
    )
    if c.state == CircuitState.HALF_OPEN and successes >= settings.healthy_threshold:
        return dataclasses.replace(c, state=CircuitState.CLOSED, since=now, trips=0)
    return c


def _failure(c: Circuit, outcome: Outcome, now: datetime, settings: CircuitSettings) -> Circuit:
    failures = c.consecutive_failures + 1
    auth = outcome == Outcome.AUTH_FAILED
    healthy = False if auth or failures >= settings.unhealthy_threshold else c.healthy
    c = dataclasses.replace(
        c,
        consecutive_failures=failures,
        consecutive_successes=0,
        healthy=healthy,
        last_failure=outcome,
    )
    if auth and c.state != CircuitState.OPEN:
        return _trip(c, now, settings.max_open_duration)
    if c.state == CircuitState.HALF_OPEN or (
        c.state == CircuitState.CLOSED and failures >= settings.failure_threshold
    ):
        return _trip(c, now, open_duration(c.trips + 1, settings))
    return c


def _trip(c: Circuit, now: datetime, seconds: float) -> Circuit:
    return dataclasses.replace(
        c,
        state=CircuitState.OPEN,
        since=now,
        open_until=now + timedelta(seconds=seconds),
        trips=c.trips + 1,
    )


def effective_state(c: Circuit, override: CircuitOverride | None) -> CircuitState:
    """The state routing obeys: the annotation override wins over what probes found."""
    if override == CircuitOverride.FORCE_OPEN:
        return CircuitState.OPEN
    if override == CircuitOverride.FORCE_CLOSED:
        return CircuitState.CLOSED
    return c.state


def parse_override(annotations: dict[str, str] | None, key: str) -> CircuitOverride | None:
    value = (annotations or {}).get(key)
    try:
        return CircuitOverride(value) if value else None
    except ValueError:
        return None


def override_problem(annotations: dict[str, str] | None, key: str) -> str:
    """Why the override annotation is ignored, or '' when it is absent or valid."""
    value = (annotations or {}).get(key)
    if not value or value in {o.value for o in CircuitOverride}:
        return ""
    shown = repr(value) if len(value) <= 64 else repr(value[:64]) + "…"
    choices = " or ".join(o.value for o in CircuitOverride)
    return f"annotation {key}={shown} is ignored: use {choices}"
