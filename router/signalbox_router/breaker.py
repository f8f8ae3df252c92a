"""The router's local passive breaker per provider, in milliseconds rather than seconds.

It reacts to this process's own request outcomes: after ``threshold`` consecutive failures a
provider is skipped for ``cooldown`` (doubling on repeated trips, up to ``max_cooldown``);
then one trial request is let through. A 429 cools the provider for its Retry-After. The
operator's circuit is the slower, shared verdict; only the operator sends probes. Pure, with
an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _State:
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0
    trial_in_flight: bool = False
    cool_until: float = 0.0


@dataclass
class Breakers:
    threshold: int = 3
    cooldown: float = 2.0
    max_cooldown: float = 30.0
    _states: dict[str, _State] = field(default_factory=dict)

    def _get(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State()
        return state

    def is_open(self, name: str, now: float) -> bool:
        """Whether to skip ``name`` now (open and not yet due for its trial)."""
        s = self._states.get(name)
        if s is None or s.open_until == 0.0:
            return False
        return now < s.open_until or s.trial_in_flight

    def cooling(self, name: str, now: float) -> bool:
        s = self._states.get(name)
        return s is not None and now < s.cool_until

    def before_request(self, name: str, now: float) -> None:
        s = self._get(name)
        if s.open_until and now >= s.open_until:
            s.trial_in_flight = True

    def success(self, name: str) -> None:
        s = self._get(name)
        s.failures, s.trips, s.open_until, s.trial_in_flight = 0, 0, 0.0, False

    def failure(self, name: str, now: float) -> None:
        s = self._get(name)
        s.failures += 1
        if s.trial_in_flight or s.failures >= self.threshold:
            s.trips += 1
            s.open_until = now + min(self.cooldown * 2 ** min(s.trips - 1, 16), self.max_cooldown)
            s.failures, s.trial_in_flight = 0, False

    def neutral(self, name: str) -> None:
        """An attempt ended that says nothing about health (the client's error): a trial it was
        is over, and the next request may be the trial."""
        s = self._states.get(name)
        if s is not None:
            s.trial_in_flight = False

    def rate_limited(self, name: str, now: float, retry_after: float) -> None:
        s = self._get(name)
        s.cool_until = max(s.cool_until, now + retry_after)
        s.trial_in_flight = False
