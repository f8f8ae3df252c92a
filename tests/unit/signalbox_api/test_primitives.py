"""Durations, money and condition helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from signalbox_api import conditions
from signalbox_api.primitives import parse_duration, parse_money


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "-1s", "1d", "s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_money() -> None:
    assert parse_money("2.50") == Decimal("2.50")
    assert parse_money("0") == 0
    for bad in ("$1", "-1", "1.1234567", "01", "1e3"):
        with pytest.raises(ValueError, match="invalid amount"):
            parse_money(bad)


def test_transition_time_moves_only_on_flip() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=1)
    t2 = t0 + timedelta(minutes=2)
    c = conditions.set_condition([], "Ready", "Unknown", "Pending", "", generation=1, now=t0)
    c = conditions.set_condition(c, "Ready", "True", "Ready", "ok", generation=1, now=t1)
    ready = conditions.find(c, "Ready")
    assert ready is not None
    assert ready.last_transition_time == t1
    c = conditions.set_condition(c, "Ready", "True", "Ready", "still ok", generation=2, now=t2)
    ready = conditions.find(c, "Ready")
    assert ready is not None
    assert ready.last_transition_time == t1
    assert ready.observed_generation == 2
    assert ready.message == "still ok"


def test_conditions_keep_a_stable_order() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    c = conditions.set_condition([], "Ready", "True", "Ready", "", generation=1, now=now)
    c = conditions.set_condition(c, "Accepted", "True", "Valid", "", generation=1, now=now)
    c = conditions.set_condition(c, "Healthy", "True", "ProbeSucceeded", "", generation=1, now=now)
    assert [x.type for x in c] == ["Accepted", "Healthy", "Ready"]
