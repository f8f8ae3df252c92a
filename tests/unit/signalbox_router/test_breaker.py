"""The router's local breaker as a table: steps in time, and whether the provider is skipped
after each. BreakerSettings come from the provider's ``spec.circuitBreaker``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from signalbox_api.provider import CircuitBreaker
from signalbox_router.limits.breaker import Breakers, BreakerSettings

Step = tuple[str, float, bool]  # (what happens, at time, is_open right after)
SETTINGS = BreakerSettings(threshold=3, open_for=2.0, max_open_for=30.0, half_open_max=1)


class Driver:
    """Plays steps, remembering which attempts are trials as the router's attempts do."""

    def __init__(self, settings: BreakerSettings) -> None:
        self.b = Breakers()
        self.b.configure("p", settings)
        self.trials: list[bool] = []

    def apply(self, what: str, now: float) -> None:
        trial = (
            self.trials.pop(0)
            if what in ("fail", "ok", "neutral", "refused") and (self.trials)
            else False
        )
        actions: dict[str, Callable[[], None]] = {
            "fail": lambda: self.b.failure("p", now, trial),
            "ok": lambda: self.b.success("p", trial),
            "try": lambda: self.trials.append(self.b.before_request("p", now)),
            "neutral": lambda: self.b.neutral("p", trial),
            "refused": lambda: self.b.key_refused("p", now, wall=1000.0 + now, trial=trial),
            "look": lambda: None,
        }
        actions[what]()


CASES: dict[str, tuple[BreakerSettings, list[Step]]] = {
    "stays closed below the threshold": (SETTINGS, [("fail", 0, False), ("fail", 1, False)]),
    "a success resets the count": (
        SETTINGS,
        [("fail", 0, False), ("fail", 0, False), ("ok", 0, False), ("fail", 0, False)],
    ),
    "opens at the threshold for openDuration": (
        SETTINGS,
        [
            ("fail", 0, False),
            ("fail", 0, False),
            ("fail", 10, True),
            ("look", 11.9, True),
            ("look", 12.0, False),  # due for its trial
        ],
    ),
    "one trial at a time, and a good trial closes it": (
        SETTINGS,
        [
            *[("fail", 0, False)] * 2,
            ("fail", 0, True),
            ("try", 2, True),  # the trial is out: everyone else still skips it
            ("look", 100, True),
            ("ok", 100, False),
            ("fail", 100, False),  # the count starts afresh
        ],
    ),
    "halfOpenMaxRequests trials at once": (
        BreakerSettings(threshold=1, open_for=1.0, max_open_for=30.0, half_open_max=2),
        [
            ("fail", 0, True),
            ("try", 1, False),  # one trial out, a second may go
            ("try", 1, True),  # both out
            ("neutral", 1.1, False),  # one proved nothing: its place is free again
            ("ok", 1.2, False),
        ],
    ),
    "a failed trial reopens it for twice as long": (
        SETTINGS,
        [
            *[("fail", 0, False)] * 2,
            ("fail", 0, True),
            ("try", 2, True),
            ("fail", 2, True),
            ("look", 5.9, True),
            ("look", 6.0, False),  # 2 s, then 4 s
            ("try", 6, True),
            ("fail", 6, True),
            ("look", 13.9, True),
            ("look", 14.0, False),  # then 8 s
        ],
    ),
    "the open time stops growing at maxOpenDuration": (
        SETTINGS,
        [
            *[("fail", 0, False)] * 2,
            ("fail", 0, True),
            *[s for t in range(2, 200, 50) for s in (("try", t, True), ("fail", t, True))],
            ("look", 152 + 29.9, True),
            ("look", 152 + 30.0, False),
        ],
    ),
    "a refused key opens it at once for maxOpenDuration": (
        SETTINGS,
        [("refused", 0, True), ("look", 29.9, True), ("look", 30.0, False)],
    ),
}


@pytest.mark.parametrize(("settings", "steps"), CASES.values(), ids=CASES.keys())
def test_breaker(settings: BreakerSettings, steps: list[Step]) -> None:
    d = Driver(settings)
    for i, (what, now, is_open) in enumerate(steps):
        d.apply(what, now)
        assert d.b.is_open("p", now) is is_open, f"after step {i}: {what} at {now}"
    assert d.b.is_open("someone-else", 0) is False


def test_settings_come_from_the_spec() -> None:
    spec = CircuitBreaker.model_validate(
        {
            "failureThreshold": 7,
            "openDuration": "5s",
            "maxOpenDuration": "2m",
            "halfOpenMaxRequests": 3,
        }
    )
    assert BreakerSettings.of(spec) == BreakerSettings(
        threshold=7, open_for=5.0, max_open_for=120.0, half_open_max=3
    )


@pytest.mark.parametrize(
    ("key_changed", "probe_ok_at", "still_open"),
    [(False, None, True), (True, None, False), (False, 999.0, True), (False, 1001.0, False)],
    ids=["nothing-new", "new-key", "probe-before-refusal", "probe-after-refusal"],
)
def test_a_refused_key_waits_for_a_new_key_or_a_good_probe(
    key_changed: bool, probe_ok_at: float | None, still_open: bool
) -> None:
    b = Breakers()
    b.key_refused("p", now=0.0, wall=1000.0)
    b.key_may_work("p", key_changed=key_changed, probe_ok_at=probe_ok_at)
    assert b.is_open("p", 1.0) is still_open


def test_rate_limit_cooling_is_separate_from_opening() -> None:
    b = Breakers()
    assert b.cooling("p", 0) is False
    b.rate_limited("p", 10.0, 5.0)
    assert b.cooling("p", 14.9) is True
    assert b.cooling("p", 15.0) is False
    assert b.is_open("p", 12.0) is False
    b.rate_limited("p", 11.0, 1.0)  # a shorter Retry-After does not cut the first one short
    assert b.cooling("p", 14.0) is True
    assert b.cooling("other", 12.0) is False


def test_a_rate_limit_during_a_trial_frees_the_next_trial() -> None:
    b = Breakers(default=BreakerSettings(threshold=1, open_for=1.0))
    b.failure("p", 0)
    trial = b.before_request("p", 1.0)
    assert trial
    assert b.is_open("p", 1.0) is True
    b.rate_limited("p", 1.0, 0.5, trial)
    assert b.is_open("p", 1.0) is False
    assert b.cooling("p", 1.2) is True


def test_providers_gone_from_the_snapshot_are_forgotten() -> None:
    b = Breakers()
    b.key_refused("gone", now=0.0, wall=0.0)
    b.forget({"kept"})
    assert b.is_open("gone", 1.0) is False
