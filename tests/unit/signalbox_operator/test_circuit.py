"""The circuit breaker as tables: sequences of probe outcomes at given offsets from T0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signalbox_api.provider import CircuitOverride, CircuitState, LLMProviderSpec
from signalbox_operator.status import circuit
from signalbox_operator.status.circuit import Circuit, CircuitSettings
from signalbox_providers.outcomes import Outcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

S = Outcome.SUCCESS
F = Outcome.TIMEOUT
AUTH = Outcome.AUTH_FAILED
RL = Outcome.RATE_LIMITED
ADVANCE = None  # a step that only calls ``advance``

Step = tuple[Outcome | None, float]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(steps: list[Step], settings: CircuitSettings | None = None) -> Circuit:
    settings = settings or CircuitSettings()
    c = Circuit()
    for outcome, offset in steps:
        if outcome is None:
            c = circuit.advance(c, at(offset))
        else:
            c = circuit.observe(c, outcome, at(offset), settings)
    return c


def trip_three(start: float = 0.0) -> list[Step]:
    return [(F, start), (F, start + 1), (F, start + 2)]


# Default settings: failure_threshold 3, open 30 s, max 600 s, healthy 2, unhealthy 3.
STATE_TABLE: list[tuple[str, list[Step], dict[str, object]]] = [
    (
        "fresh circuit is closed with no verdict",
        [],
        {"state": CircuitState.CLOSED, "trips": 0, "healthy": None, "since": None},
    ),
    (
        "two failures stay closed",
        [(F, 0), (F, 1)],
        {"state": CircuitState.CLOSED, "consecutive_failures": 2, "trips": 0, "since": at(0)},
    ),
    (
        "third consecutive failure opens for open_duration",
        trip_three(),
        {
            "state": CircuitState.OPEN,
            "since": at(2),
            "open_until": at(32),
            "trips": 1,
            "consecutive_failures": 3,
            "last_failure": F,
        },
    ),
    (
        "a success in between resets the count",
        [(F, 0), (F, 1), (S, 2), (F, 3), (F, 4)],
        {"state": CircuitState.CLOSED, "consecutive_failures": 2, "trips": 0},
    ),
    (
        "failures while open do not re-trip or extend",
        [*trip_three(), (F, 10), (Outcome.SERVER_ERROR, 20)],
        {"state": CircuitState.OPEN, "open_until": at(32), "trips": 1},
    ),
    (
        "advance before open_until keeps it open",
        [*trip_three(), (ADVANCE, 31.999)],
        {"state": CircuitState.OPEN, "open_until": at(32), "since": at(2)},
    ),
    (
        "advance at open_until goes half-open",
        [*trip_three(), (ADVANCE, 32)],
        {
            "state": CircuitState.HALF_OPEN,
            "since": at(32),
            "open_until": None,
            "consecutive_successes": 0,
            "trips": 1,
        },
    ),
    (
        "observe advances by itself: one success after open_until is half-open",
        [*trip_three(), (S, 40)],
        {"state": CircuitState.HALF_OPEN, "consecutive_successes": 1, "trips": 1},
    ),
    (
        "healthy_threshold successes close it and reset trips",
        [*trip_three(), (S, 40), (S, 50)],
        {
            "state": CircuitState.CLOSED,
            "since": at(50),
            "trips": 0,
            "consecutive_failures": 0,
            "healthy": True,
        },
    ),
    (
        "a half-open failure re-opens for twice as long",
        [*trip_three(), (ADVANCE, 32), (S, 33), (F, 34)],
        {"state": CircuitState.OPEN, "since": at(34), "open_until": at(94), "trips": 2},
    ),
    (
        "third trip doubles again",
        [*trip_three(), (F, 40), (F, 100)],
        {"state": CircuitState.OPEN, "since": at(100), "open_until": at(220), "trips": 3},
    ),
    (
        "after closing, the next trip starts from open_duration again",
        [*trip_three(), (S, 40), (S, 50), *trip_three(60)],
        {"state": CircuitState.OPEN, "open_until": at(92), "trips": 1},
    ),
    (
        "AuthFailed opens at once for the maximum and marks unhealthy",
        [(S, 0), (AUTH, 5)],
        {
            "state": CircuitState.OPEN,
            "since": at(5),
            "open_until": at(605),
            "trips": 1,
            "healthy": False,
            "last_failure": AUTH,
        },
    ),
    (
        "AuthFailed while half-open opens for the maximum",
        [*trip_three(), (ADVANCE, 32), (AUTH, 33)],
        {"state": CircuitState.OPEN, "open_until": at(633), "trips": 2},
    ),
    (
        "AuthFailed while open does not re-trip",
        [*trip_three(), (AUTH, 10)],
        {"state": CircuitState.OPEN, "open_until": at(32), "trips": 1, "healthy": False},
    ),
    (
        "RateLimited is no failure",
        [(RL, 0), (RL, 1), (RL, 2), (RL, 3)],
        {
            "state": CircuitState.CLOSED,
            "consecutive_failures": 0,
            "trips": 0,
            "healthy": None,
            "last_failure": None,
            "rate_limited_until": at(33),
        },
    ),
    (
        "RateLimited neither counts nor resets consecutive failures",
        [(F, 0), (F, 1), (RL, 2), (F, 3)],
        {"state": CircuitState.OPEN, "consecutive_failures": 3, "open_until": at(33)},
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [pytest.param(steps, expected, id=name) for name, steps, expected in STATE_TABLE],
)
def test_state_machine(steps: list[Step], expected: dict[str, object]) -> None:
    c = run(steps)
    actual = {key: getattr(c, key) for key in expected}
    assert actual == expected


def test_trip_durations_grow_to_the_maximum_through_observe() -> None:
    settings = CircuitSettings(failure_threshold=1, open_duration=10, max_open_duration=50)
    c = Circuit()
    now = T0
    durations = []
    for _ in range(6):
        c = circuit.observe(c, F, now, settings)
        assert c.state == CircuitState.OPEN
        assert c.open_until is not None
        durations.append((c.open_until - now).total_seconds())
        now = c.open_until  # the next probe finds it due for half-open
    assert durations == [10, 20, 40, 50, 50, 50]
    assert c.trips == 6


@pytest.mark.parametrize(
    ("trips", "seconds"),
    [(0, 30), (1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 600), (7, 600), (60, 600)],
)
def test_open_duration(trips: int, seconds: float) -> None:
    assert circuit.open_duration(trips, CircuitSettings()) == seconds


def test_open_duration_after_very_many_trips_stays_at_the_maximum() -> None:
    assert circuit.open_duration(1025, CircuitSettings()) == 600


def test_advance_leaves_non_open_states_alone() -> None:
    closed = Circuit(since=T0)
    half = Circuit(state=CircuitState.HALF_OPEN, since=T0)
    assert circuit.advance(closed, at(10_000)) is closed
    assert circuit.advance(half, at(10_000)) is half


# -- the healthy verdict (healthy_threshold 2, unhealthy_threshold 3) ----------------------

HEALTHY_TABLE: list[tuple[list[Outcome], bool | None]] = [
    ([], None),
    ([S], True),
    ([F], None),
    ([F, F], None),
    ([F, F, F], False),
    ([F, F, F, S], False),
    ([F, F, F, S, S], True),
    ([F, F, F, S, F, S], False),
    ([S, F, F], True),
    ([S, F, F, F], False),
    ([S, AUTH], False),
    ([AUTH], False),
    ([F, RL, RL, F], None),
    ([S, Outcome.MODEL_NOT_FOUND, Outcome.CONNECT_FAILURE, Outcome.INVALID_RESPONSE], False),
]


@pytest.mark.parametrize(("outcomes", "healthy"), HEALTHY_TABLE)
def test_healthy_verdict(outcomes: list[Outcome], healthy: bool | None) -> None:
    # Probes are far apart so that open circuits have always expired by the next one.
    c = run([(o, i * 1000.0) for i, o in enumerate(outcomes)])
    assert c.healthy is healthy


def test_unhealthy_threshold_is_independent_of_failure_threshold() -> None:
    settings = CircuitSettings(failure_threshold=5, unhealthy_threshold=2, healthy_threshold=3)
    c = Circuit()
    for i, (outcome, healthy, state) in enumerate(
        [
            (S, True, CircuitState.CLOSED),
            (F, True, CircuitState.CLOSED),
            (F, False, CircuitState.CLOSED),
            (S, False, CircuitState.CLOSED),
            (S, False, CircuitState.CLOSED),
            (S, True, CircuitState.CLOSED),
        ]
    ):
        c = circuit.observe(c, outcome, at(i), settings)
        assert (c.healthy, c.state) == (healthy, state), f"step {i}"


# -- rate limiting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "settings", "limited_for"),
    [
        (12.0, CircuitSettings(), 12.0),
        (None, CircuitSettings(), circuit.DEFAULT_RATE_LIMIT_COOLDOWN),
        (None, CircuitSettings(rate_limit_cooldown=5), 5.0),
        (0.5, CircuitSettings(rate_limit_cooldown=5), 0.5),
    ],
)
def test_rate_limited_until(
    retry_after: float | None, settings: CircuitSettings, limited_for: float
) -> None:
    before = Circuit(state=CircuitState.CLOSED, since=T0, healthy=True, consecutive_failures=1)
    c = circuit.observe(before, RL, T0, settings, retry_after=retry_after)
    assert c.rate_limited_until == at(limited_for)
    assert c.rate_limited(T0)
    assert c.rate_limited(at(limited_for - 0.001))
    assert not c.rate_limited(at(limited_for))
    assert not c.rate_limited(at(limited_for + 60))
    # Nothing else moved.
    assert (c.state, c.healthy, c.consecutive_failures, c.trips, c.last_failure) == (
        CircuitState.CLOSED,
        True,
        1,
        0,
        None,
    )


def test_zero_retry_after_is_not_limited() -> None:
    c = circuit.observe(Circuit(), RL, T0, CircuitSettings(), retry_after=0.0)
    assert c.rate_limited_until == T0
    assert not c.rate_limited(T0)


def test_never_rate_limited_without_a_deadline() -> None:
    assert not Circuit().rate_limited(T0)


def test_the_next_success_lifts_a_rate_limit() -> None:
    """A provider that answers a probe after a 429 is answering again, whatever it asked."""
    limited = circuit.observe(Circuit(), RL, T0, CircuitSettings(), retry_after=60)
    assert limited.rate_limited(at(30))
    cleared = circuit.observe(limited, S, at(30), CircuitSettings())
    assert cleared.rate_limited_until is None
    assert not cleared.rate_limited(at(30))


def test_a_huge_retry_after_is_cut_to_the_maximum() -> None:
    c = circuit.observe(Circuit(), RL, T0, CircuitSettings(), retry_after=99999999999999.0)
    assert c.rate_limited(at(599))
    assert not c.rate_limited(at(601)), "cut to maxRetryAfter (10m by default)"
    short = CircuitSettings(max_retry_after=30)
    assert not circuit.observe(Circuit(), RL, T0, short, retry_after=999999).rate_limited(at(31))


# -- overrides and settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "override", "effective"),
    [
        (CircuitState.CLOSED, None, CircuitState.CLOSED),
        (CircuitState.OPEN, None, CircuitState.OPEN),
        (CircuitState.HALF_OPEN, None, CircuitState.HALF_OPEN),
        (CircuitState.CLOSED, CircuitOverride.FORCE_OPEN, CircuitState.OPEN),
        (CircuitState.HALF_OPEN, CircuitOverride.FORCE_OPEN, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitOverride.FORCE_CLOSED, CircuitState.CLOSED),
        (CircuitState.HALF_OPEN, CircuitOverride.FORCE_CLOSED, CircuitState.CLOSED),
    ],
)
def test_effective_state(
    state: CircuitState, override: CircuitOverride | None, effective: CircuitState
) -> None:
    assert circuit.effective_state(Circuit(state=state), override) == effective


KEY = "signalbox.dev/circuit"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({KEY: "force-open"}, CircuitOverride.FORCE_OPEN),
        ({KEY: "force-closed", "other": "x"}, CircuitOverride.FORCE_CLOSED),
        ({KEY: "Force-Open"}, None),
        ({KEY: "open"}, None),
        ({KEY: ""}, None),
        ({"other/circuit": "force-open"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_override(
    annotations: dict[str, str] | None, expected: CircuitOverride | None
) -> None:
    assert circuit.parse_override(annotations, KEY) == expected


def test_settings_from_spec() -> None:
    spec = LLMProviderSpec.model_validate(
        {
            "type": "OpenAI",
            "endpoint": {"url": "https://api.openai.com/v1"},
            "circuitBreaker": {
                "failureThreshold": 5,
                "openDuration": "1m30s",
                "maxOpenDuration": "1h",
            },
            "healthCheck": {"healthyThreshold": 4, "unhealthyThreshold": 6},
        }
    )
    assert CircuitSettings.from_spec(spec) == CircuitSettings(
        failure_threshold=5,
        open_duration=90.0,
        max_open_duration=3600.0,
        healthy_threshold=4,
        unhealthy_threshold=6,
        rate_limit_cooldown=circuit.DEFAULT_RATE_LIMIT_COOLDOWN,
    )


def test_settings_from_default_spec_match_the_defaults() -> None:
    spec = LLMProviderSpec.model_validate(
        {"type": "Ollama", "endpoint": {"url": "http://ollama:11434"}}
    )
    assert CircuitSettings.from_spec(spec) == CircuitSettings()
    assert CircuitSettings().max_open_duration == 600.0


def test_a_success_while_open_half_opens_at_once() -> None:
    """Probes go on while the circuit is open: one that succeeds ends the open period early,
    and the healthy threshold still decides when traffic returns."""
    c = run([*trip_three(), (S, 5)])
    assert c.state == CircuitState.HALF_OPEN
    assert c.since == at(5)
    assert c.consecutive_successes == 1
    assert c.healthy is False
    c = circuit.observe(c, S, at(6), CircuitSettings())
    assert (c.state, c.healthy, c.trips) == (CircuitState.CLOSED, True, 0)
    assert run([*trip_three(), (F, 5)]).state == CircuitState.OPEN, "a failure keeps it open"


@pytest.mark.parametrize(
    ("steps", "doubt"),
    [
        ([], False),
        ([(S, 0)], False),
        ([(S, 0), (F, 1)], True),  # a first failure, not yet confirmed
        ([(S, 0), (F, 1), (F, 2)], True),
        (trip_three(), False),  # open: the interval, and the open period's end
        ([*trip_three(), (S, 5)], True),  # half-open
        ([*trip_three(), (S, 5), (S, 6)], False),  # closed and healthy
        ([*trip_three(), (ADVANCE, 33)], True),  # half-open at the open period's end
    ],
)
def test_in_doubt(steps: list[Step], doubt: bool) -> None:
    assert circuit.in_doubt(run(steps), CircuitSettings()) is doubt


def test_a_provider_coming_back_with_its_circuit_closed_is_in_doubt() -> None:
    """Unhealthy before the circuit trips: its first success starts a recovery to confirm."""
    settings = CircuitSettings(failure_threshold=5, unhealthy_threshold=2)
    c = run([(F, 0), (F, 1), (F, 2), (F, 3), (F, 4)], settings)
    assert c.state == CircuitState.OPEN
    c = run([(F, 0), (F, 1), (S, 2)], settings)
    assert (c.state, c.healthy) == (CircuitState.CLOSED, False)
    assert circuit.in_doubt(c, settings)
