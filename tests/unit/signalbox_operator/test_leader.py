"""Leader election: the rule as a table, the fence, and the elector against a fake Lease API
whose calls fail in the ways a real client fails."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
import urllib3

from signalbox_operator.leadership import fencing
from signalbox_operator.leadership.fencing import Fence, NotLeading
from signalbox_operator.leadership.leader import (
    Action,
    Elector,
    LeaseView,
    LostLeadership,
    Timing,
    decide,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ME = "operator-7f9c-abc"


def lease(holder: str | None, duration: float = 15.0) -> LeaseView:
    return LeaseView(holder=holder, renewed=NOW, duration=duration, version="42")


@pytest.mark.parametrize(
    ("view", "unchanged_for", "action"),
    [
        pytest.param(None, math.inf, Action.CREATE, id="no lease ever seen"),
        pytest.param(None, 14.9, Action.WAIT, id="a lease renewed moments ago vanished"),
        pytest.param(None, 15, Action.CREATE, id="a vanished lease, unrenewed for its duration"),
        pytest.param(lease(ME), 0, Action.RENEW, id="held by me"),
        pytest.param(lease(ME), 3600, Action.RENEW, id="held by me, unchanged for long"),
        pytest.param(lease("other"), 0, Action.WAIT, id="other, just seen"),
        pytest.param(lease("other"), 14.999, Action.WAIT, id="other, about to expire"),
        pytest.param(lease("other"), 15, Action.TAKE, id="other, expires now"),
        pytest.param(lease("other"), 60, Action.TAKE, id="other, long unchanged"),
        pytest.param(lease("other", duration=30), 20, Action.WAIT, id="other, longer lease"),
        pytest.param(lease(""), 0, Action.TAKE, id="empty holder"),
        pytest.param(lease(None), 0, Action.TAKE, id="released lease"),
        pytest.param(lease(ME.upper()), 1, Action.WAIT, id="holder match is exact"),
    ],
)
def test_decide(view: LeaseView | None, unchanged_for: float, action: Action) -> None:
    assert decide(view, ME, unchanged_for) == action


@pytest.mark.parametrize(
    ("duration", "deadline", "period"),
    [(15, 15, 2), (15, 10, 10), (15, 20, 2), (15, 10, 0)],
)
def test_timing_must_leave_the_old_leader_time_to_stop(
    duration: float, deadline: float, period: float
) -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Timing(duration, deadline, period)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fence_gives_a_deadline_only_while_the_lease_lasts() -> None:
    clock = Clock()
    fence = Fence(clock)
    with pytest.raises(NotLeading):
        fence.deadline(5)
    fence.open(clock.now + 10)
    assert fence.term == 1
    assert fence.deadline(5) == 5
    clock.now += 7
    assert fence.deadline(5) == pytest.approx(3)  # the write must end before the lease does
    clock.now += 2.6
    with pytest.raises(NotLeading):
        fence.deadline(5)  # 0.4 s left: not enough to start a write
    fence.extend(clock.now + 10)
    assert fence.valid()
    fence.close()
    fence.extend(clock.now + 10)  # a late renewal never reopens a closed fence
    assert not fence.valid()
    assert fencing.always_open().deadline(5) == 5


class FakeLeases:
    """The CoordinationV1Api calls the elector makes, on one in-memory Lease."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.version = 0
        self.fail: BaseException | None = None

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> Any:
        self._check()
        if self.lease is None:
            raise kubernetes.client.ApiException(status=404)
        return self.lease

    def _store(self, body: dict[str, Any]) -> Any:
        self.version += 1
        spec = body["spec"]
        renewed = datetime.fromisoformat(spec["renewTime"])
        self.lease = SimpleNamespace(
            spec=SimpleNamespace(
                holder_identity=spec["holderIdentity"],
                renew_time=renewed,
                lease_duration_seconds=spec["leaseDurationSeconds"],
            ),
            metadata=SimpleNamespace(resource_version=str(self.version)),
        )
        return self.lease

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        self._check()
        if self.lease is not None:
            raise kubernetes.client.ApiException(status=409)
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: dict[str, Any], **_: Any
    ) -> Any:
        self._check()
        if body["metadata"].get("resourceVersion") != str(self.version):
            raise kubernetes.client.ApiException(status=409)
        return self._store(body)


def elector(leases: FakeLeases, identity: str, clock: Clock) -> Elector:
    e = Elector(
        kubernetes.client.ApiClient(),
        namespace="ns",
        name="lease",
        identity=identity,
        timing=Timing(duration=3, renew_deadline=2, retry_period=0.05),
        fence=Fence(clock),
        clock=clock,
    )
    e.api = leases  # type: ignore[assignment]
    return e


CLIENT_FAILURES = [
    kubernetes.client.ApiException(status=500),
    urllib3.exceptions.MaxRetryError(None, "/", reason=None),
    ConnectionRefusedError(),
    TimeoutError(),
    RuntimeError("anything at all"),
]


@pytest.mark.parametrize("failure", CLIENT_FAILURES, ids=lambda e: type(e).__name__)
async def test_a_failing_client_never_makes_a_leader(failure: BaseException) -> None:
    leases, clock = FakeLeases(), Clock()
    standby = elector(leases, "b", clock)
    leases.fail = failure
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(standby.acquire(), 0.3)
    assert not standby.fence.valid()


async def test_standby_takes_over_only_after_the_lease_is_unchanged_for_its_duration() -> None:
    leases, clock = FakeLeases(), Clock()
    leader, standby = elector(leases, "a", clock), elector(leases, "b", clock)
    await leader.acquire()
    assert leader.fence.valid()
    assert not standby.try_once()  # first sight of the record
    clock.now += 2.9
    assert not standby.try_once()
    clock.now += 0.2
    assert standby.try_once()
    assert leases.lease.spec.holder_identity == "b"
    assert not leader.try_once()  # the old leader sees a new record and waits


@pytest.mark.parametrize("failure", CLIENT_FAILURES, ids=lambda e: type(e).__name__)
async def test_leader_rides_out_short_failures_and_stops_at_the_renew_deadline(
    failure: BaseException,
) -> None:
    leases, clock = FakeLeases(), Clock()
    leader = elector(leases, "a", clock)
    await leader.acquire()
    holding = asyncio.create_task(leader.hold())
    leases.fail = failure
    await asyncio.sleep(0.2)
    clock.now += 1.0  # half the renew deadline: a blip, invisible
    await asyncio.sleep(0.2)
    assert leader.fence.valid()
    assert not holding.done()
    leases.fail = None
    await asyncio.sleep(0.2)
    leases.fail = failure
    clock.now += 2.5  # past the deadline of the last successful renewal
    with pytest.raises(LostLeadership):
        await asyncio.wait_for(holding, 2)
    assert not leader.fence.valid()


async def test_a_deleted_lease_stops_the_leader_at_once_and_no_standby_creates_it_early() -> None:
    leases, clock = FakeLeases(), Clock()
    leader, standby = elector(leases, "a", clock), elector(leases, "b", clock)
    await leader.acquire()
    assert not standby.try_once()  # the standby has seen the lease renewed
    holding = asyncio.create_task(leader.hold())
    await asyncio.sleep(0.1)
    leases.lease = None  # kubectl delete lease
    with pytest.raises(LostLeadership, match="held by another replica, or was deleted"):
        await asyncio.wait_for(holding, 1)
    assert not leader.fence.valid(), "stopped before its renew deadline"
    clock.now += 2.9  # less than the lease duration since the standby last saw it renewed
    assert not standby.try_once()
    assert _holder(leases) is None, "not re-created while the old holder might still write"
    clock.now += 0.2
    assert standby.try_once()
    assert _holder(leases) == "b"


def _holder(leases: FakeLeases) -> str | None:
    return None if leases.lease is None else str(leases.lease.spec.holder_identity)


async def test_a_leader_that_reads_another_holder_stops_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    leader = elector(leases, "a", clock)
    await leader.acquire()
    holding = asyncio.create_task(leader.hold())
    await asyncio.sleep(0.1)
    leases._store(leader._body(str(leases.version), True, "intruder"))
    with pytest.raises(LostLeadership):
        await asyncio.wait_for(holding, 1)
    assert not leader.fence.valid()


async def test_release_never_raises_and_closes_the_fence_first() -> None:
    leases, clock = FakeLeases(), Clock()
    leader = elector(leases, "a", clock)
    await leader.acquire()
    leases.fail = urllib3.exceptions.MaxRetryError(None, "/", reason=None)
    await leader.release()
    assert not leader.fence.valid()
    leases.fail = None
    leader.fence.open(clock.now + 2)
    await leader.release()
    assert leases.lease.spec.holder_identity is None


async def test_renewals_go_on_while_the_operators_loop_is_busy() -> None:
    """The operator's event loop is blocked for longer than the renew deadline (thousands of
    probe loops would do that): the lease, held apart on its own thread, is renewed all along
    and the fence never closes."""
    leases = FakeLeases()
    leader = Elector(
        kubernetes.client.ApiClient(),
        namespace="ns",
        name="lease",
        identity="a",
        timing=Timing(duration=3, renew_deadline=1.5, retry_period=0.1),
    )
    leader.api = leases  # type: ignore[assignment]
    await leader.acquire()
    holding = asyncio.create_task(leader.hold_apart())
    await asyncio.sleep(0.2)
    before = leases.version
    time.sleep(2.5)  # noqa: ASYNC251 (the loop is busy for 2.5 s: past the renew deadline)
    assert leases.version > before + 10, "renewed while the loop was busy"
    assert leader.fence.valid()
    assert not holding.done()
    holding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holding
    renewed = leases.version
    await asyncio.sleep(0.5)
    assert leases.version <= renewed + 1, "the thread stops renewing once cancelled"


async def test_a_replica_waits_while_sharded_replicas_work_and_stays_ready() -> None:
    """While ``yield_to`` says sharded replicas hold shards, no attempt is made, and each check
    counts as an answer from the API server (a standby that waits is ready)."""
    leases, clock = FakeLeases(), Clock()
    e = elector(leases, "a", clock)
    checks = []

    def sharded_still_working() -> bool:
        checks.append(clock.now)
        clock.now += 1
        return len(checks) < 3

    e.yield_to = sharded_still_working
    await e.acquire()
    assert len(checks) == 3
    assert leases.lease.spec.holder_identity == "a"
    assert e.last_read is not None
    assert e.last_read >= checks[1]

    def broken() -> bool:
        raise kubernetes.client.ApiException(status=403)

    other = elector(FakeLeases(), "b", clock)
    other.yield_to = broken  # a check that fails does not keep a replica from leading
    await other.acquire()
    assert other.fence.valid()
