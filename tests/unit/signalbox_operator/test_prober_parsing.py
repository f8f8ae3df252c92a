"""The prober's pure parts: accepting a spec and restoring the circuit from a status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signalbox_api import conditions
from signalbox_api.provider import CircuitState, LLMProviderSpec, LLMProviderStatus
from signalbox_operator.probing.spec_reading import parse_spec, restore
from signalbox_operator.status import circuit, discovery, provider_status
from signalbox_operator.status.circuit import Circuit, CircuitSettings
from signalbox_operator.status.provider_status import Facts, ProbeReport
from signalbox_providers.outcomes import Outcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raw_spec(models: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "OpenAI",
        "endpoint": {"url": "https://api.openai.com/v1"},
        "auth": {"secretRef": {"name": "openai", "key": "apiKey"}},
    }
    if models is not None:
        raw["models"] = models
    raw.update(extra)
    return raw


# -- parse_spec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "models",
    [
        None,
        [],
        [{"name": "gpt-4o", "aliases": ["smart"]}, {"name": "gpt-4o-mini", "aliases": ["fast"]}],
        [{"name": "gpt-4o", "aliases": ["gpt-4o"]}],  # an alias equal to its own name
        [{"name": "a", "aliases": ["x", "x"]}],  # a repeated alias of one model
    ],
    ids=["no models", "empty", "distinct aliases", "self alias", "repeated own alias"],
)
def test_valid_spec_passes(models: list[dict[str, Any]] | None) -> None:
    spec, invalid = parse_spec(raw_spec(models))
    assert invalid is None
    assert isinstance(spec, LLMProviderSpec)
    assert [m.name for m in spec.models] == [m["name"] for m in models or []]


def test_parsed_spec_keeps_the_fields() -> None:
    spec, _ = parse_spec(raw_spec(priority=5, healthCheck={"interval": "10s"}))
    assert spec is not None
    assert spec.priority == 5
    assert spec.health_check.interval == "10s"


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            [{"name": "gpt-4o", "aliases": ["gpt-4o-mini"]}, {"name": "gpt-4o-mini"}],
            "spec.models: name 'gpt-4o-mini' is used by both 'gpt-4o' and 'gpt-4o-mini'",
        ),
        (
            [{"name": "gpt-4o-mini"}, {"name": "gpt-4o", "aliases": ["gpt-4o-mini"]}],
            "spec.models: name 'gpt-4o-mini' is used by both 'gpt-4o-mini' and 'gpt-4o'",
        ),
        (
            [{"name": "a", "aliases": ["chat"]}, {"name": "b", "aliases": ["chat"]}],
            "spec.models: name 'chat' is used by both 'a' and 'b'",
        ),
    ],
    ids=["alias is a later model", "alias is an earlier model", "shared alias"],
)
def test_colliding_alias_is_invalid(models: list[dict[str, Any]], message: str) -> None:
    assert parse_spec(raw_spec(models)) == (None, message)


@pytest.mark.parametrize(
    ("raw", "prefix"),
    [
        ({"endpoint": {"url": "https://x"}}, "spec.type: "),
        ({"type": "Bogus", "endpoint": {"url": "https://x"}}, "spec.type: "),
        ({"type": "OpenAI"}, "spec.endpoint: "),
        (raw_spec(priority=5000), "spec.priority: "),
        (raw_spec(healthCheck={"interval": "soon"}), "spec.healthCheck.interval: "),
        (raw_spec(models=[{"name": ""}]), "spec.models.0.name: "),
    ],
)
def test_schema_errors_name_the_field(raw: dict[str, Any], prefix: str) -> None:
    spec, invalid = parse_spec(raw)
    assert spec is None
    assert invalid is not None
    assert invalid.startswith(prefix), invalid


# -- restore ------------------------------------------------------------------------------


def healthy_condition(status: str) -> dict[str, Any]:
    return {
        "type": "Healthy",
        "status": status,
        "reason": "ProbeSucceeded" if status == "True" else "Timeout",
        "lastTransitionTime": "2026-01-01T11:00:00Z",
    }


OPEN_STATUS: dict[str, Any] = {
    "observedGeneration": 2,
    "conditions": [healthy_condition("False")],
    "circuit": {
        "state": "Open",
        "since": "2026-01-01T12:00:00Z",
        "openUntil": "2026-01-01T12:01:00Z",
        "consecutiveFailures": 4,
        "trips": 2,
    },
}


def test_restore_an_open_circuit() -> None:
    assert restore(OPEN_STATUS) == Circuit(
        state=CircuitState.OPEN,
        since=T0,
        open_until=at(60),
        consecutive_failures=4,
        trips=2,
        healthy=False,
        last_failure=Outcome.TIMEOUT,
    )


@pytest.mark.parametrize(
    ("healthy", "expected"),
    [("True", True), ("False", False), ("Unknown", None), (None, None)],
)
def test_restore_the_healthy_verdict(healthy: str | None, expected: bool | None) -> None:
    conds = [healthy_condition(healthy)] if healthy else []
    status = {"conditions": conds, "circuit": {"state": "Closed", "trips": 0}}
    restored = restore(status)
    assert restored.healthy is expected
    assert restored.state == CircuitState.CLOSED


@pytest.mark.parametrize("override", ["force-open", "force-closed"])
def test_restore_ignores_a_forced_state(override: str) -> None:
    status = {**OPEN_STATUS, "circuit": {**OPEN_STATUS["circuit"], "override": override}}
    assert restore(status) == Circuit(healthy=False, last_failure=Outcome.TIMEOUT)


@pytest.mark.parametrize(
    "status",
    [
        None,
        {},
        {"circuit": {"state": "Sideways"}},
        {"conditions": [{"type": "Healthy", "status": "Maybe"}]},
        {"circuit": {"state": "Open", "trips": -1}},
    ],
    ids=["none", "empty", "bad state", "bad condition", "negative trips"],
)
def test_restore_falls_back_to_a_fresh_circuit(status: dict[str, Any] | None) -> None:
    assert restore(status) == Circuit()


def test_restore_without_a_circuit_keeps_the_verdict() -> None:
    assert restore({"conditions": [healthy_condition("True")]}) == Circuit(healthy=True)


SPEC = LLMProviderSpec.model_validate(raw_spec())


def trip(settings: CircuitSettings) -> Circuit:
    c = Circuit()
    for i in range(settings.failure_threshold):
        c = circuit.observe(c, Outcome.TIMEOUT, at(i), settings)
    return c


def test_restore_round_trips_a_computed_status() -> None:
    settings = CircuitSettings()
    c = circuit.observe(trip(settings), Outcome.TIMEOUT, at(40), settings)  # half-open → open
    assert (c.state, c.trips) == (CircuitState.OPEN, 2)
    wire = provider_status.compute(Facts(spec=SPEC, generation=1, now=at(40), circuit=c), [])
    restored = restore(wire.to_wire())
    assert (
        restored.state,
        restored.since,
        restored.open_until,
        restored.consecutive_failures,
        restored.trips,
        restored.healthy,
    ) == (c.state, c.since, c.open_until, c.consecutive_failures, c.trips, c.healthy)
    # The restored circuit goes on where the old one stopped: the next trip doubles again.
    assert restored.open_until is not None
    later = circuit.observe(restored, Outcome.TIMEOUT, restored.open_until, settings)
    assert later.trips == 3
    assert later.open_until == restored.open_until + timedelta(seconds=120)


def test_restore_of_a_half_open_circuit() -> None:
    settings = CircuitSettings()
    c = circuit.advance(trip(settings), at(100))
    assert c.state == CircuitState.HALF_OPEN
    wire = provider_status.compute(Facts(spec=SPEC, generation=1, now=at(100), circuit=c), [])
    restored = restore(wire.to_wire())
    assert (restored.state, restored.open_until, restored.trips) == (
        CircuitState.HALF_OPEN,
        None,
        1,
    )
    closed = circuit.observe(restored, Outcome.SUCCESS, at(101), settings)
    closed = circuit.observe(closed, Outcome.SUCCESS, at(102), settings)
    assert (closed.state, closed.trips, closed.healthy) == (CircuitState.CLOSED, 0, True)


def healthy_reason(status: LLMProviderStatus) -> tuple[str, str]:
    found = conditions.find(status.conditions, "Healthy")
    assert found is not None
    return (found.status, found.reason)


def test_restart_keeps_the_unhealthy_reason() -> None:
    settings = CircuitSettings()
    c = trip(settings)
    probe = ProbeReport(outcome=Outcome.TIMEOUT, at=at(2), latency_ms=5000, message="timed out")
    before = provider_status.compute(
        Facts(spec=SPEC, generation=1, now=at(2), circuit=c, last_probe=probe), []
    )
    assert healthy_reason(before) == ("False", "Timeout")
    # A new process: the circuit comes from the status, no probe has run yet.
    restored = restore(before.to_wire())
    after = provider_status.compute(
        Facts(spec=SPEC, generation=1, now=at(10), circuit=restored), before.conditions
    )
    assert healthy_reason(after) == ("False", "Timeout")


def test_restart_after_model_not_found_is_healthy_on_the_first_success() -> None:
    settings = CircuitSettings()
    spec = LLMProviderSpec.model_validate(raw_spec(models=[{"name": "gpt-4o"}]))
    healthy = circuit.observe(Circuit(), Outcome.SUCCESS, T0, settings)
    before = provider_status.compute(
        Facts(spec=spec, generation=1, now=T0, circuit=healthy, discovered=discovery.bound(["o1"])),
        [],
    )
    assert healthy_reason(before) == ("False", "ModelNotFound")
    restored = restore(before.to_wire())
    probed = circuit.observe(restored, Outcome.SUCCESS, at(30), settings)
    after = provider_status.compute(
        Facts(
            spec=spec,
            generation=1,
            now=at(30),
            circuit=probed,
            discovered=discovery.bound(["gpt-4o"]),
        ),
        before.conditions,
    )
    assert healthy_reason(after) == ("True", "ProbeSucceeded")
