"""Status is built from whatever a provider sends without ever failing: ids, messages and URLs
are checked, cut or dropped, and what was left out is said; writes are rationed."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signalbox_api import api_keys, conditions
from signalbox_api.conditions import Reason
from signalbox_api.provider import CircuitState, LLMProviderSpec, LLMProviderStatus
from signalbox_operator.probing import refs
from signalbox_operator.status import circuit, discovery, provider_status, worth_writing
from signalbox_operator.status.circuit import Circuit
from signalbox_operator.status.provider_status import Facts, ProbeReport, Refs
from signalbox_providers.outcomes import Outcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SPEC = LLMProviderSpec.model_validate(
    {
        "type": "OpenAICompatible",
        "endpoint": {"url": "http://p.example/v1"},
        "models": [{"name": "a"}],
    }
)
HEALTHY = Circuit(since=T0, healthy=True)


def test_bound_keeps_usable_distinct_ids_in_order() -> None:
    found = discovery.bound(["b", "", "x" * 254, "b", 7, None, "a\nb", "c", "y" * 253])
    assert found.names == ("b", "c", "y" * 253)
    assert (found.listed, found.dropped) == (9, 6)


def test_bound_caps_the_count() -> None:
    found = discovery.bound(f"m{i}" for i in range(5000))
    assert len(found.names) == discovery.MAX_MODELS
    assert found.listed == 5000
    assert found.dropped == 0


def compute(**changes: Any) -> LLMProviderStatus:
    base: dict[str, Any] = {"spec": SPEC, "generation": 1, "now": T0, "circuit": HEALTHY}
    base.update(changes)
    return provider_status.compute(Facts(**base), [])


def healthy(status: LLMProviderStatus) -> conditions.Condition:
    c = conditions.find(status.conditions, "Healthy")
    assert c is not None
    return c


def test_a_cut_model_list_says_so() -> None:
    listing = [*(f"m{i}" for i in range(5000)), "a"]  # the declared model, past the cap
    status = compute(discovered=discovery.bound(listing, {"a"}))
    assert len(status.models) == discovery.MAX_MODELS
    assert status.models[0].name == "a"
    assert status.models[0].declared
    assert healthy(status).status == "True"
    assert f"status.models shows {discovery.MAX_MODELS}" in healthy(status).message
    LLMProviderStatus.model_validate(status.to_wire())  # the API server's limits hold


def test_dropped_ids_are_counted_in_the_healthy_message() -> None:
    status = compute(discovered=discovery.bound(["a", "", "z" * 400]))
    assert [m.name for m in status.models] == ["a"]
    assert "2 of 3 listed model ids were dropped" in healthy(status).message


def test_provider_made_text_of_any_length_fits() -> None:
    long = "GET http://p.example/" + "x" * 100_000
    probe = ProbeReport(outcome=Outcome.SERVER_ERROR, at=T0, latency_ms=3, code=500, message=long)
    sick = Circuit(since=T0, healthy=False, last_failure=Outcome.SERVER_ERROR)
    status = compute(
        circuit=sick,
        last_probe=probe,
        refs=Refs(base_url="http://p.example/" + "u" * 5000),
        annotation_problem="a" * 50_000,
    )
    wire = status.to_wire()
    LLMProviderStatus.model_validate(wire)
    assert len(wire["health"]["lastError"]["message"]) <= provider_status.MAX_MESSAGE
    assert "endpoint" not in wire  # too long to be a URL worth showing
    assert all(len(c.message) <= provider_status.MAX_MESSAGE for c in status.conditions)


def test_specific_reasons_win_over_the_outcome() -> None:
    probe = ProbeReport(
        outcome=Outcome.INVALID_RESPONSE,
        at=T0,
        latency_ms=3,
        code=302,
        message="GET http://p.example/v1/models: HTTP 302 redirect",
        reason=Reason.REDIRECTED,
    )
    sick = Circuit(since=T0, healthy=False, last_failure=Outcome.INVALID_RESPONSE)
    status = compute(circuit=sick, last_probe=probe)
    assert healthy(status).reason == "Redirected"
    assert status.health is not None
    assert status.health.last_error is not None
    assert status.health.last_error.reason == "Redirected"
    assert provider_status.OUTCOME_OF_REASON["Redirected"] == Outcome.INVALID_RESPONSE
    assert provider_status.OUTCOME_OF_REASON["TLSError"] == Outcome.CONNECT_FAILURE


def test_operator_error_status_keeps_the_other_conditions() -> None:
    before = compute()
    facts = Facts(spec=None, generation=1, now=T0 + timedelta(seconds=5))
    failed = provider_status.failed(facts, before.conditions, "KeyError")
    ready = conditions.find(failed.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "OperatorError")
    assert "KeyError" in ready.message
    assert conditions.find(failed.conditions, "Accepted") == conditions.find(
        before.conditions, "Accepted"
    )


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sk-abc", True),
        ("Bearer a b", True),
        ("a\tb", True),
        ("a\nb", False),
        ("a\rb", False),
        ("\x00", False),
        ("ключ", False),
        ("\ufffd", False),
        ("", True),
    ],
)
def test_sendable_header_values(value: str, ok: bool) -> None:
    assert api_keys.sendable(value) is ok


def test_an_unsendable_secret_is_invalid_header_without_the_value() -> None:
    spec = LLMProviderSpec.model_validate(
        {
            "type": "OpenAI",
            "endpoint": {"url": "https://api.openai.com/v1"},
            "auth": {"secretRef": {"name": "creds", "key": "api-key"}},
        }
    )
    secret = "sk-live\n-more"
    lookups = refs.Lookups(
        secret=lambda _k: {"api-key": secret}, service=lambda _k: None, endpoints=lambda _k: []
    )
    resolved = refs.resolve(spec, "ns", lookups)
    assert resolved.reason == Reason.INVALID_HEADER
    assert resolved.api_key is None
    assert secret not in resolved.message
    assert "sk-live" not in resolved.message


@pytest.mark.parametrize(
    ("annotations", "problem"),
    [
        (None, ""),
        ({"signalbox.dev/circuit": "force-open"}, ""),
        ({"signalbox.dev/circuit": "force-closed"}, ""),
        ({"signalbox.dev/circuit": "force-opn"}, "'force-opn' is ignored: use force-open or"),
        ({"signalbox.dev/circuit": "x" * 500}, "…"),
    ],
)
def test_override_problem(annotations: dict[str, str] | None, problem: str) -> None:
    said = circuit.override_problem(annotations, "signalbox.dev/circuit")
    assert (problem in said) if problem else said == ""
    assert len(said) < 200


def wire(**changes: Any) -> dict[str, Any]:
    return compute(**changes).to_wire()


def test_what_probes_find_is_written_at_most_once_per_interval() -> None:
    written = wire()
    probe = ProbeReport(outcome=Outcome.SERVER_ERROR, at=T0, latency_ms=3, code=500, message="m")
    found = wire(last_probe=probe)
    assert not worth_writing.should_write(written, found, T0, T0 + timedelta(seconds=4), 5)
    assert worth_writing.should_write(written, found, T0, T0 + timedelta(seconds=5), 5)


def test_a_verdict_routing_obeys_is_written_within_a_second() -> None:
    """Ready or the circuit's state flipping is not held for the interval (30 s here)."""
    written = wire()
    tripped = dataclasses.replace(HEALTHY, healthy=False, last_failure=Outcome.SERVER_ERROR)
    opened = dataclasses.replace(
        tripped, state=CircuitState.OPEN, open_until=T0 + timedelta(seconds=30)
    )
    for change in (wire(circuit=tripped), wire(circuit=opened)):
        assert worth_writing.verdict_changed(written, change)
        assert worth_writing.gap(written, change, 30) == worth_writing.VERDICT_GAP
        assert not worth_writing.should_write(written, change, T0, T0 + timedelta(seconds=0.5), 30)
        assert worth_writing.should_write(written, change, T0, T0 + timedelta(seconds=1), 30)
    probe = ProbeReport(outcome=Outcome.SERVER_ERROR, at=T0, latency_ms=3, code=500, message="m")
    found = wire(last_probe=probe)
    assert not worth_writing.verdict_changed(written, found)
    assert worth_writing.gap(written, found, 30) == 30


def test_what_people_change_is_written_at_once() -> None:
    written = wire()
    soon = T0 + timedelta(seconds=0.1)
    for change in (
        {"generation": 2},
        {"refs": Refs(reason=Reason.SECRET_NOT_FOUND, message="gone")},
        {"annotation_problem": "annotation x is ignored"},
    ):
        assert worth_writing.should_write(written, wire(**change), T0, soon, 30), change
    pending = wire(circuit=Circuit())
    assert worth_writing.should_write(pending, written, T0, soon, 30), "the first verdict"


def test_every_failure_a_probe_can_come_to_has_its_reason() -> None:
    failures = {o for o in Outcome if o != Outcome.SUCCESS}
    assert failures == set(provider_status.FAILURE_REASONS)
    assert provider_status.FAILURE_REASONS[Outcome.QUOTA_EXHAUSTED] == Reason.QUOTA_EXHAUSTED


def test_model_names_of_emoji_keep_the_status_within_its_bytes() -> None:
    """1,100 names of 253 emoji each (12 bytes apiece once JSON escapes them): the rows that
    fit the byte budget are shown, the message says so, and the status stays small."""
    names = ["a", *(f"{i:04}" + "\U0001f600" * 249 for i in range(1100))]
    status = compute(discovered=discovery.bound(names, {"a"}))
    sent = json.dumps(status.to_wire())  # as the client sends it: non-ASCII escaped
    assert len(sent) < 2 * discovery.MODELS_BYTES
    assert 0 < len(status.models) < 1100
    assert f"status.models shows {len(status.models)}" in healthy(status).message
    LLMProviderStatus.model_validate(status.to_wire())
