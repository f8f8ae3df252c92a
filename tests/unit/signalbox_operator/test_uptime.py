"""Success rate and uptime over the last hour and day, from probe results (pure, tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signalbox_api.provider import LLMProviderSpec
from signalbox_operator.status import provider_status, uptime
from signalbox_operator.status.circuit import Circuit
from signalbox_operator.status.provider_status import Facts, ProbeReport, Refs
from signalbox_providers.outcomes import Outcome

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def history(results: list[tuple[float, bool]]) -> uptime.History:
    h = uptime.History()
    for seconds, ok in results:
        h.record(at(seconds), ok)
    return h


def test_empty_history_has_no_figures() -> None:
    s = uptime.History().summary(T0, uptime.HOUR)
    assert s == uptime.Summary(success_rate=None, uptime=None, probes=0)


def test_all_up_is_full_uptime() -> None:
    h = history([(i * 30.0, True) for i in range(10)])
    s = h.summary(at(270), uptime.HOUR)
    assert s == uptime.Summary(success_rate=1.0, uptime=1.0, probes=10)


def test_gaps_count_by_the_earlier_probe() -> None:
    # Up 0-60 s, down 60-240 s (the circuit was open: no probes), up again from 240 s.
    h = history([(0, True), (60, False), (240, True), (300, True)])
    s = h.summary(at(300), uptime.HOUR)
    assert s.probes == 4
    assert s.success_rate == pytest.approx(0.75)
    assert s.uptime == pytest.approx(120 / 300)


def test_time_since_the_last_probe_counts_by_its_result() -> None:
    h = history([(0, True), (60, False)])
    assert h.summary(at(120), uptime.HOUR).uptime == pytest.approx(0.5)
    h = history([(0, True), (60, True)])
    assert h.summary(at(120), uptime.HOUR).uptime == pytest.approx(1.0)


def test_the_hour_forgets_what_the_day_keeps() -> None:
    # Down for the first two hours, then up for one hour.
    results = [(i * 60.0, False) for i in range(120)] + [(i * 60.0, True) for i in range(120, 181)]
    h = history(results)
    now = at(180 * 60)
    hour, day = h.summary(now, uptime.HOUR), h.summary(now, uptime.DAY)
    assert hour.success_rate == pytest.approx(1.0)
    assert hour.uptime == pytest.approx(1.0, abs=0.02)
    assert day.probes == 181
    assert day.success_rate == pytest.approx(61 / 181)
    assert day.uptime == pytest.approx(1 / 3, abs=0.01)


def test_a_long_absence_is_unobserved_not_down() -> None:
    h = history([(0, False), (2 * 3600 + 60, True), (2 * 3600 + 120, True)])
    s = h.summary(at(2 * 3600 + 120), uptime.DAY)
    assert s.uptime == pytest.approx(1.0)  # the two hours away counted neither way


def test_memory_stays_within_an_hour_of_minutes_and_a_day_of_hours() -> None:
    h = uptime.History()
    for i in range(3 * 24 * 60):  # three days, one probe a minute
        h.record(at(i * 60.0), i % 2 == 0)
    assert len(h._minutes.values) == 61 * 5  # fixed, however long it runs
    assert len(h._hours.values) == 25 * 5
    assert h.summary(at(3 * 86_400), uptime.DAY).probes <= 25 * 60
    assert h.summary(at(3 * 86_400), uptime.HOUR).probes <= 61


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(0, "0ms"), (42, "42ms"), (999, "999ms"), (1000, "1.0s"), (1349, "1.3s"), (75_400, "75s")],
)
def test_latency_is_shown_with_its_unit(ms: int, shown: str) -> None:
    assert provider_status.show_latency(ms) == shown


def test_status_health_carries_both_windows() -> None:
    spec = LLMProviderSpec.model_validate(
        {"type": "Ollama", "endpoint": {"url": "http://127.0.0.1:11434"}}
    )
    h = history([(0, True), (60, False), (120, True)])
    now = at(180)
    f = Facts(
        spec=spec,
        generation=1,
        now=now,
        refs=Refs(base_url="http://127.0.0.1:11434"),
        circuit=Circuit(since=T0, healthy=True),
        last_probe=ProbeReport(Outcome.SUCCESS, at(120), 42),
        last_hour=h.summary(now, uptime.HOUR),
        last_day=h.summary(now, uptime.DAY),
    )
    wire = provider_status.compute(f, []).to_wire()
    health = wire["health"]
    assert health["latency"] == "42ms"
    assert health["lastHour"] == {"successRate": 0.6667, "uptime": 0.6667, "probes": 3}
    assert health["lastDay"]["probes"] == 3


def test_a_late_result_counts_in_its_own_minute_or_not_at_all() -> None:
    h = history([(0, True), (120, True)])
    h.record(at(61), False)  # late, but its minute is still held: counted there
    assert h.summary(at(120), uptime.HOUR).probes == 3
    h.record(at(62 * 60), True)  # minute 62 takes the place minute 1 held (61 places)
    h.record(at(61), False)  # minute 1 again: its place is minute 62's now, so it is dropped
    everything = h._minutes.totals(0, 10**9)
    assert everything[0] == 3  # minutes 0 and 2, and 62: the late one is not mixed in
