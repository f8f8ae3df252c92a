"""Leader election on a coordination.k8s.io Lease, so that of several operator replicas only
one probes and writes. ``decide`` is the pure rule; ``Elector`` does the API calls.

The leader renews every ``renew`` seconds; a standby takes the lease once it has not been
renewed for ``duration`` seconds. A leader that cannot renew in time stops itself.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes

log = logging.getLogger(__name__)


class Action(enum.Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE = "take"
    WAIT = "wait"


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed: datetime | None
    duration: float
    version: str | None


def decide(lease: LeaseView | None, me: str, now: datetime) -> Action:
    if lease is None:
        return Action.CREATE
    if lease.holder == me:
        return Action.RENEW
    if not lease.holder or lease.renewed is None:
        return Action.TAKE
    if now >= lease.renewed + timedelta(seconds=lease.duration):
        return Action.TAKE
    return Action.WAIT


class LostLeadership(Exception):
    """The lease could not be renewed in time."""


class Elector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew: float = 5.0,
    ) -> None:
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew_every = duration, renew

    def _read(self) -> LeaseView | None:
        try:
            lease: Any = self.api.read_namespaced_lease(self.name, self.namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        spec = lease.spec
        return LeaseView(
            holder=spec.holder_identity,
            renewed=spec.renew_time,
            duration=float(spec.lease_duration_seconds or self.duration),
            version=lease.metadata.resource_version,
        )

    def _body(self, version: str | None, acquired: bool) -> Any:
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "renewTime": now,
            "leaseDurationSeconds": int(self.duration),
        }
        if acquired:
            spec["acquireTime"] = now
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version:
            meta["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    def try_once(self) -> bool:
        """One attempt to become or stay leader; True when this process holds the lease."""
        lease = self._read()
        action = decide(lease, self.identity, datetime.now(UTC))
        try:
            if action == Action.CREATE:
                self.api.create_namespaced_lease(self.namespace, self._body(None, True))
            elif action in (Action.RENEW, Action.TAKE):
                version = lease.version if lease else None
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, self._body(version, action == Action.TAKE)
                )
            else:
                return False
        except kubernetes.client.ApiException as exc:
            if exc.status in (409, 422):  # someone else won the race
                return False
            raise
        if action != Action.RENEW:
            log.info("acquired lease %s/%s as %s", self.namespace, self.name, self.identity)
        return True

    async def acquire(self) -> None:
        """Wait until this process is the leader."""
        while True:
            if await self._attempt():
                return
            await asyncio.sleep(self.renew_every / 2)

    async def hold(self) -> None:
        """Renew until renewal fails for longer than the lease lasts; then raise."""
        last_ok = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.renew_every)
            if await self._attempt():
                last_ok = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_ok > self.duration - self.renew_every:
                raise LostLeadership(f"could not renew lease {self.namespace}/{self.name}")

    async def release(self) -> None:
        """Give the lease up at shutdown so a standby takes over at once."""

        def clear() -> None:
            lease = self._read()
            if lease is None or lease.holder != self.identity:
                return
            body = self._body(lease.version, False)
            body["spec"]["holderIdentity"] = None
            self.api.replace_namespaced_lease(self.name, self.namespace, body)

        try:
            await asyncio.to_thread(clear)
        except kubernetes.client.ApiException as exc:
            log.warning("could not release the lease: HTTP %s", exc.status)

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_once)
        except kubernetes.client.ApiException as exc:
            log.warning("lease %s/%s: HTTP %s", self.namespace, self.name, exc.status)
            return False
        except OSError as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, type(exc).__name__)
            return False
