"""LLMProvider status from facts, and when to write it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signalbox_api import conditions
from signalbox_api.conditions import Condition, Reason
from signalbox_api.provider import (
    CircuitOverride,
    CircuitState,
    EndpointCounts,
    LLMProviderSpec,
    LLMProviderStatus,
    ProbeError,
)
from signalbox_operator.probing import spec_reading
from signalbox_operator.status import discovery, provider_status, worth_writing
from signalbox_operator.status.circuit import Circuit
from signalbox_operator.status.provider_status import Facts, ProbeReport, Refs
from signalbox_providers.outcomes import Outcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

HEALTHY = Circuit(since=T0, healthy=True, consecutive_successes=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_spec(**extra: Any) -> LLMProviderSpec:
    raw: dict[str, Any] = {
        "type": "OpenAI",
        "endpoint": {"url": "https://api.openai.com/v1"},
        "auth": {"secretRef": {"name": "openai", "key": "apiKey"}},
    }
    raw.update(extra)
    return LLMProviderSpec.model_validate(raw)


SPEC = make_spec()
OK_REFS = Refs(base_url="https://api.openai.com/v1", api_key="sk-test")


def facts(**changes: Any) -> Facts:
    base: dict[str, Any] = {"spec": SPEC, "generation": 3, "now": T0, "refs": OK_REFS}
    base.update(changes)
    if isinstance(base.get("discovered"), tuple):  # a model list as the provider sent it
        base["discovered"] = discovery.bound(base["discovered"])
    return Facts(**base)


def cond(status: LLMProviderStatus, type_: str) -> tuple[str, str, str]:
    c = conditions.find(status.conditions, type_)
    assert c is not None, f"no {type_} condition"
    return (c.status, c.reason, c.message)


def summary(status: LLMProviderStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_before_the_first_probe() -> None:
    status = provider_status.compute(facts(), [])
    assert summary(status) == {
        "Accepted": ("True", "Valid"),
        "ResolvedRefs": ("True", "Resolved"),
        "Healthy": ("Unknown", "Pending"),
        "Available": ("True", "Ready"),
        "Ready": ("Unknown", "Pending"),
    }
    assert [c.type for c in status.conditions] == [
        "Accepted",
        "ResolvedRefs",
        "Healthy",
        "Available",
        "Ready",
    ]
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert all(c.last_transition_time == T0 for c in status.conditions)
    assert status.observed_generation == 3
    assert status.health is None
    assert status.endpoint == "https://api.openai.com/v1"
    assert status.circuit is not None
    assert status.circuit.state == CircuitState.CLOSED
    assert status.circuit.override is None


def test_all_good_is_ready() -> None:
    status = provider_status.compute(facts(circuit=HEALTHY), [])
    assert summary(status) == {
        "Accepted": ("True", "Valid"),
        "ResolvedRefs": ("True", "Resolved"),
        "Healthy": ("True", "ProbeSucceeded"),
        "Available": ("True", "Ready"),
        "Ready": ("True", "Ready"),
    }


def test_invalid_spec() -> None:
    message = "spec.models: name 'x' is used by both 'a' and 'b'"
    status = provider_status.compute(Facts(spec=None, generation=4, now=T0, invalid=message), [])
    assert cond(status, "Accepted") == ("False", "InvalidSpec", message)
    for type_ in ("ResolvedRefs", "Healthy", "Available"):
        assert cond(status, type_) == ("Unknown", "InvalidSpec", "the spec was not accepted")
    assert cond(status, "Ready") == ("False", "InvalidSpec", message)
    assert status.models == []
    assert status.model_summary is None
    assert status.observed_generation == 4


def test_unresolved_refs_propagate_to_ready() -> None:
    refs = Refs(Reason.SECRET_NOT_FOUND, "Secret default/openai not found")
    status = provider_status.compute(facts(refs=refs, circuit=HEALTHY), [])
    assert cond(status, "ResolvedRefs") == (
        "False",
        "SecretNotFound",
        "Secret default/openai not found",
    )
    assert cond(status, "Ready") == ("False", "SecretNotFound", "Secret default/openai not found")
    assert status.endpoint is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Outcome.TIMEOUT, "Timeout"),
        (Outcome.CONNECT_FAILURE, "ConnectionRefused"),
        (Outcome.SERVER_ERROR, "ServerError"),
        (Outcome.AUTH_FAILED, "AuthFailed"),
        (Outcome.MODEL_NOT_FOUND, "ModelNotFound"),
        (Outcome.INVALID_RESPONSE, "InvalidResponse"),
        (Outcome.BAD_REQUEST, "ProbeFailed"),
        (None, "ProbeFailed"),  # e.g. a verdict restored from status without the outcome
    ],
)
def test_unhealthy_reason_follows_the_last_failure(failure: Outcome | None, reason: str) -> None:
    probe = ProbeReport(
        outcome=failure or Outcome.SERVER_ERROR,
        at=T0,
        latency_ms=5,
        code=0,
        message="GET https://api.openai.com/v1/models: failed",
    )
    c = Circuit(since=T0, healthy=False, consecutive_failures=3, last_failure=failure)
    status = provider_status.compute(facts(circuit=c, last_probe=probe), [])
    expected = ("False", reason, "GET https://api.openai.com/v1/models: failed")
    assert cond(status, "Healthy") == expected
    assert cond(status, "Ready") == expected


def test_open_circuit_is_unavailable() -> None:
    c = Circuit(
        state=CircuitState.OPEN,
        since=T0,
        open_until=at(30),
        consecutive_failures=3,
        trips=1,
        healthy=True,
    )
    status = provider_status.compute(facts(circuit=c), [])
    assert cond(status, "Available") == ("False", "CircuitOpen", "the circuit is open")
    assert cond(status, "Ready") == ("False", "CircuitOpen", "the circuit is open")
    assert status.circuit is not None
    assert status.circuit.state == CircuitState.OPEN
    assert status.circuit.open_until == at(30)
    assert status.circuit.trips == 1
    assert status.circuit.consecutive_failures == 3


def test_half_open_hides_open_until_and_is_available() -> None:
    c = Circuit(state=CircuitState.HALF_OPEN, since=T0, open_until=at(30), healthy=True)
    status = provider_status.compute(facts(circuit=c), [])
    assert status.circuit is not None
    assert status.circuit.state == CircuitState.HALF_OPEN
    assert status.circuit.open_until is None
    assert cond(status, "Available")[0] == "True"


def test_force_open_override() -> None:
    status = provider_status.compute(
        facts(circuit=HEALTHY, override=CircuitOverride.FORCE_OPEN), []
    )
    assert status.circuit is not None
    assert status.circuit.state == CircuitState.OPEN
    assert status.circuit.override == CircuitOverride.FORCE_OPEN
    assert status.circuit.open_until is None
    assert cond(status, "Available") == (
        "False",
        "CircuitOpen",
        "the circuit is open (forced by annotation)",
    )
    assert cond(status, "Ready")[:2] == ("False", "CircuitOpen")
    assert cond(status, "Healthy")[:2] == ("True", "ProbeSucceeded")


def test_force_closed_override_makes_an_open_circuit_available() -> None:
    c = Circuit(state=CircuitState.OPEN, since=T0, open_until=at(30), trips=1, healthy=True)
    status = provider_status.compute(facts(circuit=c, override=CircuitOverride.FORCE_CLOSED), [])
    assert status.circuit is not None
    assert status.circuit.state == CircuitState.CLOSED
    assert status.circuit.override == CircuitOverride.FORCE_CLOSED
    assert cond(status, "Available")[:2] == ("True", "Ready")
    assert cond(status, "Ready")[:2] == ("True", "Ready")


def test_rate_limited_is_unavailable_until_the_deadline() -> None:
    c = Circuit(since=T0, healthy=True, rate_limited_until=at(30))
    limited = provider_status.compute(facts(circuit=c, now=at(10)), [])
    message = f"rate limited until {at(30).isoformat()}"
    assert cond(limited, "Available") == ("False", "RateLimited", message)
    assert cond(limited, "Ready") == ("False", "RateLimited", message)
    assert cond(limited, "Healthy")[0] == "True"
    later = provider_status.compute(facts(circuit=c, now=at(30)), limited.conditions)
    assert cond(later, "Available")[:2] == ("True", "Ready")
    assert cond(later, "Ready")[:2] == ("True", "Ready")


def test_a_rate_limit_is_recorded_restored_and_lifted_by_force_closed() -> None:
    c = Circuit(since=T0, healthy=True, rate_limited_until=at(30))
    limited = provider_status.compute(facts(circuit=c, now=at(10)), [])
    assert limited.circuit is not None
    assert limited.circuit.rate_limited_until == at(30)
    restored = spec_reading.restore(limited.to_wire())  # a restart, or a new leader
    assert restored.rate_limited_until == at(30)
    forced = provider_status.compute(
        facts(circuit=c, now=at(10), override=CircuitOverride.FORCE_CLOSED), []
    )
    assert cond(forced, "Available")[:2] == ("True", "Ready")
    assert cond(forced, "Ready")[:2] == ("True", "Ready")
    done = provider_status.compute(facts(circuit=c, now=at(31)), [])
    assert done.circuit is not None
    assert done.circuit.rate_limited_until is None


def test_suspended() -> None:
    status = provider_status.compute(facts(spec=make_spec(suspend=True), circuit=HEALTHY), [])
    assert cond(status, "Healthy") == ("Unknown", "Suspended", "probing is suspended")
    assert cond(status, "Available") == ("False", "Suspended", "spec.suspend is true")
    assert cond(status, "Ready") == ("False", "Suspended", "spec.suspend is true")


def test_suspended_before_any_probe_is_not_ready() -> None:
    status = provider_status.compute(facts(spec=make_spec(suspend=True)), [])
    assert cond(status, "Ready")[:2] == ("False", "Suspended")


MODELS = [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}, {"name": "o1"}]


@pytest.mark.parametrize(
    ("discover", "discovered", "healthy"),
    [
        (True, ("gpt-4o", "gpt-4o-mini", "o1", "extra"), ("True", "ProbeSucceeded", "")),
        (
            True,
            ("gpt-4o",),
            ("False", "ModelNotFound", "declared models not served: gpt-4o-mini, o1"),
        ),
        (True, None, ("True", "ProbeSucceeded", "")),  # no model list seen yet
        (False, ("gpt-4o",), ("True", "ProbeSucceeded", "")),  # discovery is off
    ],
)
def test_declared_models_missing_from_discovery(
    discover: bool, discovered: tuple[str, ...] | None, healthy: tuple[str, str, str]
) -> None:
    spec = make_spec(models=MODELS, discoverModels=discover)
    status = provider_status.compute(facts(spec=spec, circuit=HEALTHY, discovered=discovered), [])
    assert cond(status, "Healthy") == healthy
    assert cond(status, "Ready")[0] == healthy[0]
    if healthy[0] == "False":
        assert cond(status, "Ready")[1] == "ModelNotFound"


def test_missing_models_message_names_at_most_five() -> None:
    spec = make_spec(models=[{"name": f"m{i}"} for i in range(8)])
    status = provider_status.compute(facts(spec=spec, circuit=HEALTHY, discovered=()), [])
    assert cond(status, "Healthy")[2] == "declared models not served: m0, m1, m2, m3, m4"


def test_last_transition_time_moves_only_on_a_flip() -> None:
    first = provider_status.compute(facts(circuit=HEALTHY), [])
    same = provider_status.compute(facts(circuit=HEALTHY, now=at(60)), first.conditions)
    for c in same.conditions:
        assert c.last_transition_time == T0, c.type
    sick = Circuit(since=T0, healthy=False, last_failure=Outcome.TIMEOUT)
    flipped = provider_status.compute(facts(circuit=sick, now=at(120)), same.conditions)
    times = {c.type: c.last_transition_time for c in flipped.conditions}
    assert times == {
        "Accepted": T0,
        "ResolvedRefs": T0,
        "Healthy": at(120),
        "Available": T0,
        "Ready": at(120),
    }


def test_previous_conditions_of_other_types_are_kept() -> None:
    foreign = Condition(type="Custom", status="True", reason="Mine", last_transition_time=T0)
    status = provider_status.compute(facts(), [foreign])
    assert conditions.find(status.conditions, "Custom") == foreign
    assert status.conditions[-1].type == "Custom"


@pytest.mark.parametrize(
    ("declared", "discovered", "names", "summary_text"),
    [
        ([], None, [], None),
        (["a"], None, ["a"], "a"),
        (["a", "b", "c"], (), ["a", "b", "c"], "a,b,c"),
        (["a", "b"], ("c", "a", "d", "e"), ["a", "b", "c", "d", "e"], "a,b,c +2"),
        ([], ("x", "y", "z", "w"), ["x", "y", "z", "w"], "x,y,z +1"),
    ],
)
def test_models_and_summary(
    declared: list[str],
    discovered: tuple[str, ...] | None,
    names: list[str],
    summary_text: str | None,
) -> None:
    spec = make_spec(models=[{"name": n} for n in declared])
    status = provider_status.compute(facts(spec=spec, discovered=discovered), [])
    assert [m.name for m in status.models] == names
    assert [m.declared for m in status.models] == [n in declared for n in names]
    assert status.model_summary == summary_text


def test_health_after_a_success() -> None:
    probe = ProbeReport(outcome=Outcome.SUCCESS, at=at(5), latency_ms=42, code=200)
    status = provider_status.compute(
        facts(circuit=HEALTHY, last_probe=probe, last_success=at(5), success_rate=2 / 3), []
    )
    assert status.health is not None
    assert status.health.last_probe_time == at(5)
    assert status.health.last_success_time == at(5)
    assert status.health.latency_ms == 42
    assert status.health.success_rate == 0.667
    assert status.health.last_error is None
    assert "lastError" not in status.to_wire()["health"]


def test_health_after_a_failure() -> None:
    probe = ProbeReport(
        outcome=Outcome.SERVER_ERROR,
        at=at(10),
        latency_ms=7,
        code=503,
        message="GET https://api.openai.com/v1/models: HTTP 503",
    )
    status = provider_status.compute(
        facts(circuit=HEALTHY, last_probe=probe, last_success=at(5)), []
    )
    assert status.health is not None
    assert status.health.last_error == ProbeError(
        code=503, reason="ServerError", message="GET https://api.openai.com/v1/models: HTTP 503"
    )
    assert status.health.last_success_time == at(5)
    assert status.health.success_rate is None


def test_endpoint_counts_are_copied() -> None:
    refs = Refs(
        base_url="http://10.0.0.2:8000/v1",
        endpoints=EndpointCounts(ready=2, total=3),
        message="2/3 endpoints ready",
    )
    status = provider_status.compute(facts(refs=refs), [])
    assert status.endpoint == "http://10.0.0.2:8000/v1"
    assert status.endpoints == EndpointCounts(ready=2, total=3)
    assert cond(status, "ResolvedRefs") == ("True", "Resolved", "2/3 endpoints ready")


def test_status_never_contains_the_api_key() -> None:
    probe = ProbeReport(outcome=Outcome.AUTH_FAILED, at=T0, latency_ms=1, code=401)
    c = Circuit(since=T0, healthy=False, last_failure=Outcome.AUTH_FAILED)
    status = provider_status.compute(facts(circuit=c, last_probe=probe), [])
    assert "sk-test" not in status.model_dump_json()
    assert "sk-test" not in repr(OK_REFS)


# -- should_write ---------------------------------------------------------------------------

WRITTEN: dict[str, Any] = {
    "observedGeneration": 1,
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "t0"}
    ],
    "circuit": {"state": "Closed", "consecutiveFailures": 0, "trips": 0},
    "health": {
        "lastProbeTime": "2026-01-01T12:00:00Z",
        "lastSuccessTime": "2026-01-01T12:00:00Z",
        "latencyMs": 40,
        "successRate": 1.0,
    },
}


def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(WRITTEN)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("written", "written_at", "new", "elapsed", "expected"),
    [
        pytest.param(None, None, WRITTEN, 0, True, id="first write"),
        pytest.param(WRITTEN, None, WRITTEN, 0, True, id="never written at"),
        pytest.param(
            WRITTEN,
            T0,
            changed(("conditions", 0, "status"), "False"),
            1,
            True,
            id="condition flipped",
        ),
        pytest.param(
            WRITTEN,
            T0,
            changed(("conditions", 0, "message"), "new words"),
            1,
            True,
            id="condition message",
        ),
        pytest.param(
            WRITTEN, T0, changed(("circuit", "state"), "Open"), 1, True, id="circuit state"
        ),
        pytest.param(
            WRITTEN, T0, changed(("circuit", "consecutiveFailures"), 1), 1, False, id="failures"
        ),
        pytest.param(
            WRITTEN,
            T0,
            changed(("health", "lastError"), {"code": 500, "reason": "ServerError"}),
            1,
            True,
            id="last error appears",
        ),
        pytest.param(
            WRITTEN, T0, changed(("health", "latencyMs"), 41), 59.9, False, id="latency, 59.9 s"
        ),
        pytest.param(
            WRITTEN, T0, changed(("health", "latencyMs"), 41), 60, True, id="latency, 60 s"
        ),
        pytest.param(
            WRITTEN,
            T0,
            changed(("health", "lastProbeTime"), "2026-01-01T12:00:30Z"),
            30,
            False,
            id="probe time, 30 s",
        ),
        pytest.param(
            WRITTEN, T0, changed(("health", "successRate"), 0.5), 61, True, id="rate, 61 s"
        ),
        pytest.param(WRITTEN, T0, WRITTEN, 0, False, id="unchanged"),
        pytest.param(WRITTEN, T0, copy.deepcopy(WRITTEN), 3600, False, id="unchanged, 1 h"),
    ],
)
def test_should_write(
    written: dict[str, Any] | None,
    written_at: datetime | None,
    new: dict[str, Any],
    elapsed: float,
    expected: bool,
) -> None:
    assert worth_writing.should_write(written, new, written_at, at(elapsed)) is expected


def test_should_write_with_computed_statuses() -> None:
    previous = provider_status.compute(facts(circuit=HEALTHY), []).conditions

    def wire(latency: int, when: datetime, c: Circuit = HEALTHY) -> dict[str, Any]:
        probe = ProbeReport(outcome=Outcome.SUCCESS, at=when, latency_ms=latency, code=200)
        f = facts(now=when, circuit=c, last_probe=probe, last_success=when)
        return provider_status.compute(f, previous).to_wire()

    base = wire(40, T0)
    later = wire(45, at(10))
    assert later != base
    assert not worth_writing.should_write(base, later, T0, at(10))
    assert worth_writing.should_write(base, later, T0, at(60))
    sick = Circuit(since=T0, healthy=False, last_failure=Outcome.TIMEOUT)
    assert worth_writing.should_write(base, wire(45, at(10), sick), T0, at(10))


def test_comparable_drops_only_volatile_health_figures() -> None:
    out = worth_writing.comparable(
        changed(("health", "lastError"), {"code": 0, "reason": "Timeout"})
    )
    assert out["health"] == {"lastError": {"code": 0, "reason": "Timeout"}}
    assert out["circuit"] == {
        k: v for k, v in WRITTEN["circuit"].items() if k != "consecutiveFailures"
    }
    assert worth_writing.comparable({})["health"] == {}
    assert "latencyMs" in WRITTEN["health"]  # the input is not mutated
