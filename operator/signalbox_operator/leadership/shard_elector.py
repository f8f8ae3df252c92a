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
Changed = Callable[[set[int], set[int]], None]  # gained, lost


@dataclass
class _Peer:
    record: tuple[str | None, datetime | None]
    changed_at: float  # when this replica first saw the record as it is (own clock)
    live_since: float  # when this replica first saw the member live


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
            return Elector(
                api,
                namespace=namespace,
                name=lease_name,
                identity=identity,
                timing=self.timing,
                fence=Fence(clock),
                clock=clock,
                labels={shards.LEASE_LABEL: name, shards.ROLE_LABEL: role},
            )

        self.shards = [lease(shards.shard_lease(name, i), "shard") for i in range(count)]
        self.member = lease(shards.member_lease(name, identity), "member")
        self.held: set[int] = set()
        self._peers: dict[str, _Peer] = {}  # membership Lease name -> what was seen of it
        self._joined: float | None = None  # when this replica's membership was first written
        # For the health endpoint, as ``Elector``'s.
        self.last_attempt: float | None = None
        self.last_read: float | None = None

    @property
    def where(self) -> str:
        return f"{self.namespace}/{shards.shard_lease(self.name, 0)}…{self.count - 1}"

    def fence(self, shard: int) -> Fence:
        return self.shards[shard].fence

    def remaining(self) -> float:
        """Seconds the longest-held shard stays held without another renewal; 0 with none."""
        return max((self.fence(i).remaining() for i in self.held), default=0.0)

    def members(self) -> list[str]:
        """The replicas this one counts as live, itself included, sorted."""
        now = self._clock()
        live = {self.identity}
        for peer in self._peers.values():
            if peer.record[0] and now - peer.changed_at < self.timing.duration:
                live.add(peer.record[0])
        return sorted(live)

    # -- one round ----------------------------------------------------------------------------

    def step(self) -> tuple[set[int], set[int]]:
        """One round, as the module says: the shards gained and lost."""
        gained: set[int] = set()
        lost: set[int] = set()
        started = self._clock()
        try:
            listed = self._list()
        except Exception as exc:  # API errors, timeouts: no shard is renewed this round
            log.warning("shard leases %s: %s", self.where, _why(exc))
            lost = {i for i in self.held if self.fence(i).remaining() <= 0}
            self._lose(lost)
            return gained, lost
        finally:
            self.last_attempt = self._clock()
        self.last_read = self._clock()
        member = listed.get(self.member.name)
        try:
            if self.member.act(member) and self._joined is None:
                self._joined = started
        except Exception as exc:
            log.warning("membership lease %s: %s", self.member.name, _why(exc))
        members = self.members()
        assigned = shards.assignment(self.count, members)
        for shard, elector in enumerate(self.shards):
            view = listed.get(elector.name)
            named = assigned.get(shard)
            try:
                if shard in self.held:
                    if named != self.identity and self._settled(named):
                        self._lose({shard})
                        lost.add(shard)
                        elector.give_up()
                        log.info("handed shard %d over to %s", shard, named)
                    elif elector.act(view):
                        elector.fence.extend(started + self.timing.renew_deadline)
                    else:
                        self._lose({shard})
                        lost.add(shard)
                elif named == self.identity and self._ready(started):
                    if elector.act(view):
                        elector.fence.open(started + self.timing.renew_deadline)
                        self.held.add(shard)
                        gained.add(shard)
                else:
                    elector.note(view)
            except Exception as exc:
                log.warning("shard lease %s: %s", elector.name, _why(exc))
                if shard in self.held and elector.fence.remaining() <= 0:
                    self._lose({shard})
                    lost.add(shard)
        if gained or lost:
            log.info(
                "shards held: %s (gained %s, lost %s; members %d)",
                sorted(self.held) or "none",
                sorted(gained) or "none",
                sorted(lost) or "none",
                len(members),
            )
        return gained, lost

    def _list(self) -> dict[str, LeaseView | None]:
        """The operator's Leases by name, remembering each member's record as seen."""
        found: Any = self.api.list_namespaced_lease(
            self.namespace,
            label_selector=f"{shards.LEASE_LABEL}={self.name}",
            _request_timeout=self.timing.retry_period,
        )
        now = self._clock()
        listed: dict[str, LeaseView | None] = {}
        for item in found.items:
            view = self.member.view(item)
            name = item.metadata.name
            listed[name] = view
            labels = item.metadata.labels or {}
            if labels.get(shards.ROLE_LABEL) != "member" or name == self.member.name:
                continue
            peer = self._peers.get(name)
            if peer is None or peer.record != view.record:
                was_live = peer is not None and now - peer.changed_at < self.timing.duration
                since = peer.live_since if peer is not None and was_live else now
                self._peers[name] = _Peer(view.record, now, since)
            elif now - peer.changed_at > FORGET_AFTER * self.timing.duration:
                self._forget(name)
        for name in set(self._peers) - set(listed):
            del self._peers[name]
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
            p.record[0] == identity and now - p.live_since >= self.timing.retry_period
            for p in self._peers.values()
        )

    def _lose(self, lost: set[int]) -> None:
        for shard in lost:
            self.fence(shard).close()
        self.held -= lost

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
