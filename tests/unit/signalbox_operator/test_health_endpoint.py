"""The operator's own /healthz and /readyz decisions: standby and leader alive, a stuck loop or a
dead kopf not, and readiness that follows the lease reads."""

from __future__ import annotations

from dataclasses import replace

from signalbox_operator.health import HealthLimits, Phase, Reading, Status, liveness, readiness
from signalbox_operator.leadership.fencing import Fence, always_open

LIMITS = HealthLimits(stalled_after=18.0, stale_after=15.0)
STANDBY = Reading(
    phase=Phase.STANDBY,
    phase_since=0.0,
    last_attempt=99.0,
    last_read=99.0,
    working=False,
    lease_left=0.0,
)
LEADER = replace(STANDBY, phase=Phase.LEADING, working=True, lease_left=8.0)


def test_a_standby_with_recent_reads_is_alive_and_ready() -> None:
    assert liveness(STANDBY, 100.0, LIMITS).ok
    answer = readiness(STANDBY, 100.0, LIMITS)
    assert answer.ok
    assert answer.phase == "standing by"


def test_a_leader_with_kopf_running_and_the_lease_held_is_alive_and_ready() -> None:
    assert liveness(LEADER, 100.0, LIMITS).ok
    assert readiness(LEADER, 100.0, LIMITS).ok


def test_a_leader_whose_kopf_died_is_neither_alive_nor_ready() -> None:
    dead = replace(LEADER, working=False)
    for decide in (liveness, readiness):
        answer = decide(dead, 100.0, LIMITS)
        assert not answer.ok
        assert "kopf" in answer.reason


def test_a_loop_that_stopped_attempting_is_not_alive() -> None:
    stuck = replace(STANDBY, last_attempt=80.0)
    answer = liveness(stuck, 100.0, LIMITS)
    assert not answer.ok
    assert "20s" in answer.reason
    assert not readiness(stuck, 100.0, LIMITS).ok


def test_a_standby_whose_reads_fail_is_alive_but_not_ready() -> None:
    # attempts go on (each fails), the last good read is 16 s old
    failing = replace(STANDBY, last_attempt=99.5, last_read=84.0)
    assert liveness(failing, 100.0, LIMITS).ok
    answer = readiness(failing, 100.0, LIMITS)
    assert not answer.ok
    assert "has not answered a lease read for 16s" in answer.reason


def test_a_standby_that_never_read_the_lease_is_not_ready() -> None:
    answer = readiness(replace(STANDBY, last_read=None), 100.0, LIMITS)
    assert not answer.ok
    assert "yet" in answer.reason


def test_a_leader_past_its_renew_deadline_is_not_ready() -> None:
    answer = readiness(replace(LEADER, lease_left=-0.1), 100.0, LIMITS)
    assert not answer.ok
    assert "renewed" in answer.reason


def test_stopping_a_term_is_alive_for_a_bounded_time_and_never_ready() -> None:
    stopping = replace(STANDBY, phase=Phase.STOPPING, phase_since=95.0, last_attempt=50.0)
    assert liveness(stopping, 100.0, LIMITS).ok
    assert not readiness(stopping, 100.0, LIMITS).ok
    assert not liveness(stopping, 114.0, LIMITS).ok


class _Elector:
    last_attempt: float | None = None
    last_read: float | None = None


def test_status_reads_the_elector_and_the_fence_with_its_own_clock() -> None:
    now = [10.0]
    elector = _Elector()
    status = Status(elector, clock=lambda: now[0])
    first = status.reading()
    assert (first.phase, first.last_attempt, first.last_read) == (Phase.STANDBY, 10.0, None)
    elector.last_attempt, elector.last_read = 12.0, 11.5
    fence = Fence(lambda: now[0])
    fence.open(20.0)
    now[0] = 13.0
    status.working = lambda: True
    status.enter(Phase.LEADING, fence)
    reading = status.reading()
    assert (reading.phase, reading.phase_since) == (Phase.LEADING, 13.0)
    assert (reading.last_attempt, reading.last_read) == (12.0, 11.5)
    assert reading.lease_left == 7.0
    assert reading.working


def test_without_leader_election_the_loop_always_counts_as_attempting() -> None:
    now = [10.0]
    status = Status(None, clock=lambda: now[0])
    status.working = lambda: True
    status.enter(Phase.LEADING, always_open())
    now[0] = 1000.0
    reading = status.reading()
    assert reading.last_attempt == 1000.0
    assert liveness(reading, now[0], LIMITS).ok
    assert readiness(reading, now[0], LIMITS).ok
