"""Leadership by shard: one Lease per shard, one membership Lease per replica, on a thread of
their own so that a busy operator loop never delays a renewal (as ``Elector.hold_apart``).

Every retry period the replica renews its membership Lease, lists the operator's Leases (one
LIST), and then, for each shard:

- it holds the shard and the assignment still names it (``shards.assignment``): it renews the
  shard's Lease, extending that shard's fence;
- it holds the shard but another live replica, seen live for at least one retry period, is
  now named: it closes the shard's fence and clears the Lease's holder, and the named replica
  takes the shard at its next step (a hand-over within two retry periods);
- it is named and does not hold the shard: it campaigns as a single leader would
  (``leader.decide``): a free Lease is taken at once, a held one once its record has not
  changed for the lease duration on this replica's own clock.

A replica that stops renewing (killed, paused, cut off) drops out of the others' member lists
after the lease duration, the same time its shard Leases take to expire, so its shards pass to
the live replicas within the lease duration plus a retry period. Membership Leases of
replicas gone for ``FORGET_AFTER`` durations are deleted by any live replica.

Each shard has its own ``Fence``: opened when the Lease is won, extended on each renewal,
closed the moment the Lease is lost or given up. ``changed`` tells the operator's loop which
shards it gained and lost, to start and stop their work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kubernetes

from signalbox_operator.leadership import shards
from signalbox_operator.leadership.fencing import Fence
from signalbox_operator.leadership.leader import Elector, LeaseView, Timing

log = logging.getLogger(__name__)
FORGET_AFTER = 20  # lease durations after which a silent member's Lease is deleted
LATE = "not renewed within the renew deadline"
Changed = Callable[[set[int], set[int]], None]  # gained, lost


@dataclass
class _Seen:
    """Another Lease of the operator's, as this replica has seen it (times on its own clock)."""

    role: str  # "member", "shard", or "leader" (the one Lease of replicas run unsharded)
    count: str  # the shard count of the replica that wrote it
    record: tuple[str | None, datetime | None]
    changed_at: float  # when this replica first saw the record as it is
    live_since: float  # when this replica first saw it live

    def live(self, now: float, duration: float) -> bool:
        return bool(self.record[0]) and now - self.changed_at < duration


class LeaseRecords:
    """The operator's Leases of one name as listed, each record timed on this process's own
    clock: a Lease is live while its record has changed within the lease duration."""

    def __init__(
        self,
        api: kubernetes.client.CoordinationV1Api,
        namespace: str,
        name: str,
        timing: Timing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name, self.timing = api, namespace, name, timing
        self._clock = clock
        self.seen: dict[str, _Seen] = {}

    def refresh(self) -> list[Any]:
        """List the Leases (and read the unsharded one); the Lease objects listed."""
        found: Any = self.api.list_namespaced_lease(
            self.namespace,
            label_selector=f"{shards.LEASE_LABEL}={self.name}",
            _request_timeout=self.timing.retry_period,
        )
        items = list(found.items)
        try:
            items.append(
                self.api.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=self.timing.retry_period
                )
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
        now = self._clock()
        names = set()
        for item in items:
            name = item.metadata.name
            names.add(name)
            labels = item.metadata.labels or {}
            role = "leader" if name == self.name else labels.get(shards.ROLE_LABEL, "")
            record = (item.spec.holder_identity, item.spec.renew_time)
            seen = self.seen.get(name)
            if seen is None or seen.record != record:
                was_live = seen is not None and seen.live(now, self.timing.duration)
                since = seen.live_since if seen is not None and was_live else now
                count = labels.get(shards.COUNT_LABEL, "1")
                self.seen[name] = _Seen(role, count, record, now, since)
        for name in set(self.seen) - names:
            del self.seen[name]
        return items

    def live(self, role: str) -> list[tuple[str, _Seen]]:
        now = self._clock()
        return [
            (name, s)
            for name, s in self.seen.items()
            if s.role == role and s.live(now, self.timing.duration)
        ]

    def others_working(self, count: int) -> bool:
        """Whether replicas of another configuration hold a live Lease: the unsharded one, or
        a shard of another count."""
        return bool(self.live("leader")) or any(
            s.count != str(count) for _, s in self.live("shard")
        )

    def __call__(self) -> bool:
        """For an unsharded replica: whether sharded ones still work (it waits while they do)."""
        self.refresh()
        return bool(self.live("shard"))


class ShardElector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        count: int,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if count < 1:
            raise ValueError("the number of shards must be at least 1")
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity, self.count = namespace, name, identity, count
        self.timing = timing or Timing()
        self._clock = clock

        def lease(lease_name: str, role: str) -> Elector:
            labels = {shards.LEASE_LABEL: name, shards.ROLE_LABEL: role}
            return Elector(
                api,
                namespace=namespace,
                name=lease_name,
                identity=identity,
                timing=self.timing,
                fence=Fence(clock),
                clock=clock,
                labels={**labels, shards.COUNT_LABEL: str(count)},
            )

        self.shards = [lease(shards.shard_lease(name, i, count), "shard") for i in range(count)]
        self.member = lease(shards.member_lease(name, identity), "member")
        self.records = LeaseRecords(self.api, namespace, name, self.timing, clock)
        self.held: set[int] = set()
        self._joined: float | None = None  # when this replica's membership was first written
        self._waiting = False  # for another configuration's replicas to stop
        # For the health endpoint, as ``Elector``'s.
        self.last_attempt: float | None = None
        self.last_read: float | None = None

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}-shard-*-of-{self.count}"

    def fence(self, shard: int) -> Fence:
        return self.shards[shard].fence

    def remaining(self) -> float:
        """Seconds the longest-held shard stays held without another renewal; 0 with none."""
        return max((self.fence(i).remaining() for i in self.held), default=0.0)

    def members(self) -> list[str]:
        """The replicas of this configuration this one counts as live, itself included."""
        live = {self.identity}
        for name, seen in self.records.live("member"):
            if name != self.member.name and seen.count == str(self.count) and seen.record[0]:
                live.add(seen.record[0])
        return sorted(live)

    # -- one round ----------------------------------------------------------------------------

    def step(self) -> tuple[set[int], set[int]]:
        """One round, as the module says: the shards gained and lost."""
        started = self._clock()
        try:
            listed = self._list()
        except Exception as exc:  # API errors, timeouts: no shard is renewed this round
            log.warning("shard leases %s: %s", self.where, _why(exc))
            expired = {i for i in self.held if self.fence(i).remaining() <= 0}
            self._lose(expired, LATE)
            return set(), expired
        finally:
            self.last_attempt = self._clock()
        self.last_read = self._clock()
        try:
            if self.member.act(listed.get(self.member.name)) and self._joined is None:
                self._joined = started
        except Exception as exc:
            log.warning("membership lease %s: %s", self.member.name, _why(exc))
        members = self.members()
        assigned = shards.assignment(self.count, members)
        waiting = self.records.others_working(self.count)
        if waiting != self._waiting:
            self._waiting = waiting
            if waiting:
                log.info("replicas with another number of shards still work: waiting for them")
        may_take = self._ready(started) and not waiting
        gained: set[int] = set()
        lost: set[int] = set()
        for shard, elector in enumerate(self.shards):
            named = assigned.get(shard)
            try:
                moved = self._step_shard(shard, listed.get(elector.name), named, may_take, started)
            except Exception as exc:
                log.warning("shard lease %s: %s", elector.name, _why(exc))
                moved = shard in self.held and elector.fence.remaining() <= 0
                if moved:
                    self._lose({shard}, LATE)
            if moved:
                (gained if shard in self.held else lost).add(shard)
        if gained or lost:
            log.info(
                "shards held: %s (gained %s, lost %s; members %d)",
                sorted(self.held) or "none",
                sorted(gained) or "none",
                sorted(lost) or "none",
                len(members),
            )
        return gained, lost

    def _step_shard(
        self, shard: int, view: LeaseView | None, named: str | None, may_take: bool, started: float
    ) -> bool:
        """Renew, hand over, take or only note one shard's Lease; whether it changed hands."""
        elector = self.shards[shard]
        if shard in self.held:
            if named != self.identity and self._settled(named):
                self._lose({shard})
                elector.give_up()
                log.info("handed shard %d over to %s", shard, named)
                return True
            if elector.act(view):
                elector.fence.extend(started + self.timing.renew_deadline)
                return False
            self._lose({shard}, "the lease is another's, or was deleted")
            return True
        if named == self.identity and may_take:
            if elector.act(view):
                elector.fence.open(started + self.timing.renew_deadline)
                self.held.add(shard)
                return True
            return False
        elector.note(view)
        return False

    def _list(self) -> dict[str, LeaseView | None]:
        """The operator's Leases by name; membership Leases silent for long are deleted."""
        listed: dict[str, LeaseView | None] = {
            item.metadata.name: self.member.view(item) for item in self.records.refresh()
        }
        now = self._clock()
        for name, seen in self.records.seen.items():
            if (
                seen.role == "member"
                and now - seen.changed_at > FORGET_AFTER * self.timing.duration
            ):
                self._forget(name)
        return listed

    def _forget(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.api.delete_namespaced_lease(
                name, self.namespace, _request_timeout=self.timing.retry_period
            )
            log.info("deleted the membership lease %s of a replica long gone", name)

    def _ready(self, now: float) -> bool:
        """Campaign only once this replica's membership has been up for a retry period, so that
        the others count it and it counts them (no shard is won only to be handed on)."""
        return self._joined is not None and now - self._joined >= self.timing.retry_period

    def _settled(self, identity: str | None) -> bool:
        """Whether ``identity`` has been seen live long enough to hand a shard over to."""
        now = self._clock()
        return any(
            seen.record[0] == identity and now - seen.live_since >= self.timing.retry_period
            for _, seen in self.records.live("member")
        )

    def _lose(self, lost: set[int], why: str = "") -> None:
        """Close the fences of ``lost`` first; ``why``: lost, not handed over or given up."""
        for shard in lost:
            self.fence(shard).close()
        self.held -= lost
        for shard in sorted(lost) if why else ():
            log.warning("lost shard %d (%s): %s", shard, self.shards[shard].name, why)

    # -- the thread ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, changed: Changed) -> None:
        """Steps every retry period until ``stop`` is set, telling ``changed`` what moved;
        then gives every shard and the membership up, so the others take over at once."""
        while not stop.is_set():
            gained, lost = self.step()
            if gained or lost:
                changed(gained, lost)
            stop.wait(self.timing.retry_period)
        self.release_all(changed)

    def release_all(self, changed: Changed) -> None:
        held = set(self.held)
        self._lose(held)
        if held:
            changed(set(), held)
        for shard in held:
            try:
                self.shards[shard].give_up()
            except Exception as exc:
                log.warning("could not release %s: %s", self.shards[shard].name, _why(exc))
        with contextlib.suppress(Exception):
            self.api.delete_namespaced_lease(
                self.member.name, self.namespace, _request_timeout=self.timing.retry_period
            )


def _why(exc: BaseException) -> str:
    if isinstance(exc, kubernetes.client.ApiException):
        return f"HTTP {exc.status}"
    return type(exc).__name__
