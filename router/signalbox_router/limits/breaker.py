"""The router's local passive breaker per provider, in milliseconds rather than seconds.

It reacts to this process's own request outcomes, with the provider's ``spec.circuitBreaker``: after
``failureThreshold`` consecutive failures the provider is skipped for ``openDuration`` (doubling on
repeated trips, up to ``maxOpenDuration``); then up to ``halfOpenMaxRequests`` trial requests go
through at once. A successful trial closes it, a failed one opens it again. An answer saying the key
is refused (401/403) opens it at once for ``maxOpenDuration``, or until the key changes or the
operator reports a successful probe after the refusal. A 429 cools the provider for its Retry-After,
an answer that the quota is spent for ``quotaCooldown``. The operator's circuit is the slower,
shared verdict; only the operator sends probes. Pure, with an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signalbox_api.primitives import parse_duration
from signalbox_api.provider import CircuitBreaker


@dataclass(frozen=True)
class BreakerSettings:
    threshold: int = 3
    open_for: float = 2.0
    max_open_for: float = 30.0
    half_open_max: int = 1
    quota_cooldown: float = 600.0

    @classmethod
    def of(cls, spec: CircuitBreaker) -> BreakerSettings:
        return cls(
            threshold=spec.failure_threshold,
            open_for=parse_duration(spec.open_duration),
            max_open_for=parse_duration(spec.max_open_duration),
            half_open_max=spec.half_open_max_requests,
            quota_cooldown=parse_duration(spec.quota_cooldown),
        )


@dataclass
class _State:
    settings: BreakerSettings
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0  # 0: closed
    trials: int = 0  # trial requests in flight while half-open
    key_refused_at: float | None = None  # wall-clock time of a 401/403, while it holds
    cool_until: float = 0.0


@dataclass
class Breakers:
    default: BreakerSettings = field(default_factory=BreakerSettings)
    _states: dict[str, _State] = field(default_factory=dict)

    def configure(self, name: str, settings: BreakerSettings) -> None:
        """Use ``settings`` for ``name`` from now on (its state is kept)."""
        state = self._states.get(name)
        if state is None:
            self._states[name] = _State(settings)
        elif state.settings is not settings and state.settings != settings:
            state.settings = settings

    def _get(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State(self.default)
        return state

    def is_open(self, name: str, now: float) -> bool:
        """Whether to skip ``name`` now: open and not yet due, or its trials all taken."""
        s = self._states.get(name)
        if s is None or s.open_until == 0.0:
            return False
        return now < s.open_until or s.trials >= s.settings.half_open_max

    def cooling(self, name: str, now: float) -> bool:
        s = self._states.get(name)
        return s is not None and now < s.cool_until

    def before_request(self, name: str, now: float) -> bool:
        """An attempt starts; True when it is a half-open trial (it must end in ``success``,
        ``failure`` or ``neutral`` with ``trial=True``)."""
        s = self._get(name)
        if s.open_until and now >= s.open_until:
            s.trials += 1
            return True
        return False

    def success(self, name: str, trial: bool = False) -> None:
        s = self._get(name)
        s.failures, s.trips, s.open_until, s.trials, s.key_refused_at = 0, 0, 0.0, 0, None

    def failure(self, name: str, now: float, trial: bool = False) -> None:
        s = self._get(name)
        self._end_trial(s, trial)
        s.failures += 1
        if trial or s.failures >= s.settings.threshold:
            s.trips += 1
            wait = s.settings.open_for * 2 ** min(s.trips - 1, 16)
            s.open_until = now + min(wait, s.settings.max_open_for)
            s.failures = 0

    def key_refused(self, name: str, now: float, wall: float, trial: bool = False) -> None:
        """The provider refused its key: no traffic until the key changes, the operator's probe
        succeeds after ``wall``, or ``maxOpenDuration`` passes."""
        s = self._get(name)
        self._end_trial(s, trial)
        s.trips += 1
        s.failures = 0
        s.open_until = now + s.settings.max_open_for
        s.key_refused_at = wall

    def key_may_work(self, name: str, *, key_changed: bool, probe_ok_at: float | None) -> None:
        """A new snapshot: close a breaker opened for a refused key when the key is new or the
        operator saw the provider answer after the refusal."""
        s = self._states.get(name)
        if s is None or s.key_refused_at is None:
            return
        if key_changed or (probe_ok_at is not None and probe_ok_at > s.key_refused_at):
            self.success(name)

    def neutral(self, name: str, trial: bool = False) -> None:
        """An attempt ended that says nothing about health (the client's error, a client gone):
        a trial it was is over, and the next request may be the trial."""
        s = self._states.get(name)
        if s is not None:
            self._end_trial(s, trial)

    def rate_limited(self, name: str, now: float, retry_after: float, trial: bool = False) -> None:
        s = self._get(name)
        self._end_trial(s, trial)
        s.cool_until = max(s.cool_until, now + retry_after)

    def state(self, name: str, now: float) -> str:
        """``Closed``, ``Open`` or ``HalfOpen`` (due for, or running, trial requests)."""
        s = self._states.get(name)
        if s is None or s.open_until == 0.0:
            return "Closed"
        return "Open" if now < s.open_until else "HalfOpen"

    def trials(self, name: str) -> int:
        s = self._states.get(name)
        return s.trials if s is not None else 0

    def forget(self, keep: set[str]) -> None:
        """Drop the state of providers no longer in the snapshot."""
        for name in [n for n in self._states if n not in keep]:
            del self._states[name]

    @staticmethod
    def _end_trial(s: _State, trial: bool) -> None:
        if trial and s.trials > 0:
            s.trials -= 1
