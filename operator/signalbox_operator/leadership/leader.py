"""Leader election on a coordination.k8s.io Lease, so that of several operator replicas only
one probes and writes. ``decide`` is the pure rule; ``Elector`` does the API calls.

As in client-go: the leader renews every ``retry_period`` and keeps working only while its
last successful renewal is younger than ``renew_deadline``; a standby takes the lease once the
lease record has not changed, on the standby's own clock, for the lease's duration. The renew
deadline is shorter than the duration, so the old leader has stopped writing (its fence is
closed) before any standby may take over, whatever the clocks of the two machines say.

The leader renews on a thread and an event loop of its own (``hold_apart``), so a busy
operator loop cannot starve its lease. Every failure of a call (API errors, refused
connections, urllib3's MaxRetryError, timeouts) counts as a failed attempt, never as success.

A leader that reads its Lease held by another, or gone (or whose renewal meets a conflict:
someone else changed it), stops at once, without waiting out its renew deadline; and no
replica that has seen the Lease re-creates it before it has gone unrenewed for the lease
duration, so a deleted Lease makes no second writer while the first may still write. A replica
that never saw one (a fresh install, or a process started just after the delete) creates it
at once: waiting a duration on every fresh install would cost more than the narrow case it
covers, where the old leader stops at its next renewal.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes

from signalbox_operator.leadership.fencing import Fence

log = logging.getLogger(__name__)


class Action(enum.Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE = "take"
    WAIT = "wait"


@dataclass(frozen=True)
class Timing:
    """Lease duration, how long a leader may go without renewing, and how often it tries."""

    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration"
            )


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed: datetime | None
    duration: float
    version: str | None

    @property
    def record(self) -> tuple[str | None, datetime | None]:
        """What changes whenever the holder renews or the lease changes hands."""
        return (self.holder, self.renewed)


def decide(
    lease: LeaseView | None, me: str, unchanged_for: float, duration: float = 15.0
) -> Action:
    """What to do with the lease as read, given how long (on this process's own clock) its
    record has been seen unchanged (for a lease that is gone: since it was last seen renewed;
    infinite when none was ever seen). A vanished lease is created again only after
    ``duration``, the time its last holder may still write."""
    if lease is None:
        return Action.CREATE if unchanged_for >= duration else Action.WAIT
    if lease.holder == me:
        return Action.RENEW
    if not lease.holder:
        return Action.TAKE
    if unchanged_for >= lease.duration:
        return Action.TAKE
    return Action.WAIT


class LostLeadership(Exception):
    """The lease could not be renewed within the renew deadline."""


class Elector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing | None = None,
        fence: Fence | None = None,
        clock: Callable[[], float] = time.monotonic,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.labels = labels  # on the Lease when this process creates or writes it
        # True while replicas of another configuration (sharded ones) still hold Leases: this
        # one does not campaign meanwhile (``shard_elector.LeaseRecords``).
        self.yield_to: Callable[[], bool] | None = None
        self._yielded = False
        self.timing = timing or Timing()
        self.fence = fence or Fence(clock)
        self._clock = clock
        self._seen: tuple[tuple[str | None, datetime | None], float] | None = None
        # For the health endpoint (clock readings): when the last attempt ended, whatever its
        # outcome, and when the lease was last read successfully.
        self.last_attempt: float | None = None
        self.last_read: float | None = None

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _read(self) -> LeaseView | None:
        try:
            lease: Any = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timing.retry_period
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self.view(lease)

    def view(self, lease: Any) -> LeaseView:
        """What the rule reads of a Lease object (as read, or as listed)."""
        spec = lease.spec
        return LeaseView(
            holder=spec.holder_identity,
            renewed=spec.renew_time,
            duration=float(spec.lease_duration_seconds or self.timing.duration),
            version=lease.metadata.resource_version,
        )

    def _body(self, version: str | None, acquired: bool, holder: str | None) -> Any:
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "renewTime": now,
            "leaseDurationSeconds": round(self.timing.duration),
        }
        if acquired:
            spec["acquireTime"] = now
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            meta["labels"] = self.labels
        if version:
            meta["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    def note(self, lease: LeaseView | None) -> float:
        """Record the Lease as read (or listed) without acting on it; how long its record has
        been seen unchanged. A replica that may take the Lease later counts from here."""
        return self._unchanged_for(lease, self._clock())

    def _unchanged_for(self, lease: LeaseView | None, now: float) -> float:
        if lease is None:  # gone: the time since it was last seen renewed, if ever
            return math.inf if self._seen is None else now - self._seen[1]
        if self._seen is None or self._seen[0] != lease.record:
            self._seen = (lease.record, now)
        return now - self._seen[1]

    def try_once(self) -> bool:
        """One attempt to become or stay leader; True when this process holds the lease.

        Raises whatever the client raises; callers count that as a failed attempt.
        """
        lease = self._read()
        self.last_read = self._clock()
        return self.act(lease)

    def act(self, lease: LeaseView | None) -> bool:
        """``try_once`` on a Lease just read (or listed): True when this process holds it."""
        unchanged_for = self._unchanged_for(lease, self._clock())
        action = decide(lease, self.identity, unchanged_for, self.timing.duration)
        timeout = self.timing.retry_period
        try:
            if action == Action.CREATE:
                body = self._body(None, True, self.identity)
                self.api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            elif action in (Action.RENEW, Action.TAKE):
                body = self._body(
                    lease.version if lease else None, action == Action.TAKE, self.identity
                )
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=timeout
                )
            else:
                return False
        except kubernetes.client.ApiException as exc:
            if exc.status in (409, 422):  # someone else won the race
                return False
            raise
        return True

    async def _attempt(self) -> bool | None:
        """One attempt, off the event loop, bounded in time: True when this process holds the
        lease, False when the lease is another's (or gone), None when the attempt failed."""
        try:
            async with asyncio.timeout(self.timing.retry_period * 1.5):
                return await asyncio.to_thread(self.try_once)
        except kubernetes.client.ApiException as exc:
            log.warning("lease %s: HTTP %s", self.where, exc.status)
        except Exception as exc:  # urllib3, ssl, timeouts: all a failed attempt
            log.warning("lease %s: %s", self.where, type(exc).__name__)
        finally:
            self.last_attempt = self._clock()
        return None

    async def acquire(self) -> None:
        """Wait until this process is the leader; then open the fence."""
        while True:
            if await self._yielding():
                await asyncio.sleep(self.timing.retry_period)
                continue
            started = self._clock()
            if await self._attempt():
                self.fence.open(started + self.timing.renew_deadline)
                log.info("acquired lease %s as %s", self.where, self.identity)
                return
            await asyncio.sleep(self.timing.retry_period)

    async def _yielding(self) -> bool:
        """Whether to wait for another configuration's replicas; a failed check does not wait
        (the attempt that follows meets the same API server, and is fenced as ever)."""
        if self.yield_to is None:
            return False
        try:
            async with asyncio.timeout(self.timing.retry_period * 1.5):
                waiting = await asyncio.to_thread(self.yield_to)
        except Exception as exc:
            log.warning("lease %s: could not list the shard leases: %s", self.where, exc)
            return False
        finally:
            self.last_attempt = self._clock()
        self.last_read = self._clock()  # the API server answered: a standby that waits is ready
        if waiting and not self._yielded:
            log.info("sharded replicas still hold shard leases: waiting for them to stop")
        self._yielded = waiting
        return waiting

    async def hold(self, stop: threading.Event | None = None) -> None:
        """Renew every retry period; close the fence and raise once the renew deadline of the
        last successful renewal has passed, or at once when the lease is another's or gone.
        Returns, renewing no more, once ``stop`` is set."""
        why = f"could not renew lease {self.where} within {self.timing.renew_deadline:g}s"
        while True:
            await asyncio.sleep(self.timing.retry_period)
            if stop is not None and stop.is_set():
                return
            if self.fence.remaining() <= 0:
                break
            started = self._clock()
            held = await self._attempt()
            if held:
                self.fence.extend(started + self.timing.renew_deadline)
            elif held is False:
                why = f"lease {self.where} is held by another replica, or was deleted"
                break
            elif self.fence.remaining() <= 0:
                break
        self.fence.close()
        raise LostLeadership(why)

    async def hold_apart(self) -> None:
        """``hold`` on a thread and an event loop of its own, so that however busy the
        operator's loop is (thousands of probe loops, status writes), renewals keep their
        pace: Python hands that thread the interpreter every few milliseconds. Raises
        LostLeadership as ``hold`` does; cancelling this stops the thread at its next renewal."""
        stop = threading.Event()
        try:
            await asyncio.to_thread(asyncio.run, self.hold(stop))
        finally:
            stop.set()

    def give_up(self) -> None:
        """Clear the Lease's holder if it is this process (after closing the fence), so
        another takes it at once. Raises whatever the client raises."""
        self.fence.close()
        lease = self._read()
        if lease is None or lease.holder != self.identity:
            return
        body = self._body(lease.version, False, None)
        self.api.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=self.timing.retry_period
        )

    async def release(self) -> None:
        """Stop writing, then give the lease up so a standby takes over at once. Never raises."""
        self.fence.close()
        try:
            async with asyncio.timeout(self.timing.retry_period * 2):
                await asyncio.to_thread(self.give_up)
        except kubernetes.client.ApiException as exc:
            log.warning("could not release the lease %s: HTTP %s", self.where, exc.status)
        except Exception as exc:  # shutting down: say what happened, go on
            log.warning("could not release the lease %s: %s", self.where, type(exc).__name__)
