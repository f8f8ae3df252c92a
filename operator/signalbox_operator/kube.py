"""The operator's writes to the API server: status patches and Events.

Calls go through the official kubernetes client in worker threads, off the event loop. Every
write first asks the fence for a deadline, so nothing is sent by a replica whose lease may have
passed on, and nothing sent outlives the lease. Status is written one way, ``write_status``:
patches carry the object's ``resourceVersion`` as a precondition, so a writer that did not see
the latest status (a paused former leader, or this one after someone else wrote) gets a
conflict instead of overwriting, and the writer itself reads the object again and has the
status made anew from what it read. Given the object's UID, a patch also tests it: nothing
written for a deleted object lands on a new one of the same name (the new one is ``GONE`` to
the old writer). Deadlines are ``asyncio.timeout``, never ``asyncio.wait_for``, which in
Python 3.11 can swallow a cancellation that arrives as the work finishes.
Events with the same reason and message are aggregated by bumping ``count``. Every write is
counted in metrics. Messages are built by the caller and never carry secrets.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import kubernetes

from signalbox_api import API_VERSION, GROUP, VERSION
from signalbox_operator.leadership.fencing import Fence, NotLeading, always_open
from signalbox_operator.metrics import Metrics

log = logging.getLogger(__name__)
COMPONENT = "signalbox-operator"
WRITE_SECONDS = 5.0  # the longest a single write may take, when the lease lasts that long
EVENT_MEMORY = 4096  # distinct Events remembered for aggregation
T = TypeVar("T")


API_THREADS = 16  # API calls the operator has out at once; the rest wait their turn


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    plural: str
    namespace: str
    name: str
    uid: str | None = None


class Written(enum.Enum):
    WRITTEN = "written"
    GONE = "gone"  # the object no longer exists
    CONFLICT = "conflict"  # the object changed since the version the write was based on


@dataclass(frozen=True)
class Current:
    """An object's status as the API server has it now, and the version to write against."""

    status: dict[str, Any]
    version: str | None


Key = tuple[str, str, str]  # plural, namespace, name
# Makes the status to write: from the writer's own view (None), or anew from the API server's.
Render = Callable[["Current | None"], dict[str, Any]]


class Kube:
    """Thin async wrapper for the few API calls the operator makes itself."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        metrics: Metrics,
        identity: str,
        fence: Fence | None = None,
    ) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._metrics = metrics
        self._identity = identity
        self._fence = fence or always_open()
        self._term = self._fence.term
        self._versions: dict[Key, str] = {}
        # The threads its API calls run on (not asyncio's default pool, which kopf and DNS
        # lookups share), and a turn per thread.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            API_THREADS, thread_name_prefix="kube-api"
        )
        self._turns = asyncio.Semaphore(API_THREADS)
        self._events: collections.OrderedDict[tuple[str, ...], tuple[str, int, str]] = (
            collections.OrderedDict()
        )

    # -- fencing ----------------------------------------------------------------------------

    def under(self, fence: Fence) -> Kube:
        """This writer, fenced by ``fence`` in its current term (a shard's): the same threads,
        versions and Event memory, another lease to answer to."""
        view = copy.copy(self)
        view._fence, view._term = fence, fence.term
        return view

    def may_write(self) -> bool:
        """Whether this process holds the lease now (and in the term this Kube was made for)."""
        return self._fence.term == self._term and self._fence.valid()

    def _deadline(self) -> float:
        if self._fence.term != self._term:
            raise NotLeading("the lease was lost since this work began")
        return self._fence.deadline(WRITE_SECONDS)

    async def _call(
        self, func: Callable[..., T], *args: Any, fenced: bool = True, **kwargs: Any
    ) -> T:
        """Run one API call on a thread of the operator's own pool, once one of its
        ``API_THREADS`` turns is free; its deadline (the fence's, unless ``fenced`` is False)
        starts with the call, not while it waits its turn. Thousands of probe loops writing at
        once so queue up instead of timing out in the queue, retrying and queueing again."""
        async with self._turns:
            timeout = self._deadline() if fenced else WRITE_SECONDS
            call = functools.partial(func, *args, _request_timeout=timeout, **kwargs)
            async with asyncio.timeout(timeout + 0.5):
                return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Let its threads go once their calls end (the term is over)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- status -----------------------------------------------------------------------------

    def observe(self, plural: str, namespace: str, name: str, version: str | None) -> None:
        """The watch delivered the object at ``version``; writes are based on the newest one."""
        key = (plural, namespace, name)
        if version is None:
            return
        known = self._versions.get(key)
        if (
            known is None
            or not (known.isdigit() and version.isdigit())
            or int(version) > int(known)
        ):
            self._versions[key] = version

    def forget(self, plural: str, namespace: str, name: str) -> None:
        self._versions.pop((plural, namespace, name), None)

    async def read_status(
        self, plural: str, namespace: str, name: str, uid: str | None = None
    ) -> Current | None:
        """The object's status and version as they are now; None when the object is gone (or,
        given ``uid``, replaced by another of the same name)."""
        try:
            obj: Any = await self._call(
                self._custom.get_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                self.forget(plural, namespace, name)
                return None
            raise
        if uid is not None and obj.get("metadata", {}).get("uid") != uid:
            return None
        version = obj.get("metadata", {}).get("resourceVersion")
        if version:
            self._versions[(plural, namespace, name)] = version
        return Current(status=dict(obj.get("status") or {}), version=version)

    async def write_status(
        self, plural: str, namespace: str, name: str, render: Render, uid: str | None = None
    ) -> Written:
        """The one way the operator writes status. ``render(None)`` makes the status from the
        caller's own view, and it is written if the object is still at the version last seen
        (and, given ``uid``, still the same object). On a conflict (someone wrote since), the
        object is read again and ``render(current)`` makes the status anew from what the API
        server holds now, for one more write; a second conflict is the caller's next pass to
        retry.

        Raises NotLeading when this process may not write, and the client's errors otherwise.
        """
        result = await self._write_once(plural, namespace, name, render(None), uid)
        if result != Written.CONFLICT:
            return result
        current = await self.read_status(plural, namespace, name, uid)
        if current is None:
            return Written.GONE
        return await self._write_once(plural, namespace, name, render(current), uid)

    async def _write_once(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], uid: str | None
    ) -> Written:
        key = (plural, namespace, name)
        version = self._versions.get(key)
        if version is None:
            current = await self.read_status(plural, namespace, name, uid)
            if current is None:
                return Written.GONE
            version = current.version
        body: list[dict[str, Any]] = [{"op": "add", "path": "/status", "value": status}]
        if version:
            body.insert(0, {"op": "replace", "path": "/metadata/resourceVersion", "value": version})
        if uid:
            body.insert(0, {"op": "test", "path": "/metadata/uid", "value": uid})
        try:
            obj: Any = await self._call(
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
                _content_type="application/json-patch+json",
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                self.forget(plural, namespace, name)
                return Written.GONE
            # A failed UID test is a bare 422 ("Invalid"): which it was, the object tells.
            if exc.status == 422 and uid and await self.read_status(*key, uid) is None:
                self.forget(plural, namespace, name)
                return Written.GONE
            if exc.status == 409:
                self._versions.pop(key, None)
                return Written.CONFLICT
            raise
        new_version = obj.get("metadata", {}).get("resourceVersion") if obj else None
        if new_version:
            self._versions[key] = new_version
        self._metrics.status_writes.labels(kind=plural).inc()
        return Written.WRITTEN

    # -- secrets ----------------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's base64 ``data``; None when there is no such Secret. A read, not fenced."""
        try:
            secret: Any = await self._call(
                self._core.read_namespaced_secret, name, namespace, fenced=False
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(secret.data or {})

    # -- events -----------------------------------------------------------------------------

    async def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about one of our objects, or bump the count of the same one
        posted before; failures are logged, not raised, and nothing is sent without the lease.
        Each one posted is a log line too (a warning for a Warning), so circuit changes and
        Ready transitions are in the operator's log as well as in ``kubectl get events``."""
        message = message[:1024]
        key = (ref.namespace, ref.name, ref.uid or "", type_, reason, message)
        now = datetime.now(UTC).isoformat()
        try:
            known = self._events.pop(key, None)
            if known is not None and await self._bump(ref.namespace, known, now):
                self._events[key] = (known[0], known[1] + 1, known[2])
            else:
                name = await self._create(ref, type_, reason, message, now)
                self._events[key] = (name, 1, now)
            while len(self._events) > EVENT_MEMORY:
                self._events.popitem(last=False)
            log.log(
                logging.WARNING if type_ == "Warning" else logging.INFO,
                "%s %s/%s: %s",
                reason,
                ref.namespace,
                ref.name,
                message,
            )
        except NotLeading:
            return
        except kubernetes.client.ApiException as exc:
            log.warning(
                "could not post event %s for %s/%s: HTTP %s",
                reason,
                ref.namespace,
                ref.name,
                exc.status,
            )
        except Exception as exc:  # an Event is never worth a failed loop
            log.warning(
                "could not post event %s for %s/%s: %s",
                reason,
                ref.namespace,
                ref.name,
                type(exc).__name__,
            )

    async def _bump(self, namespace: str, known: tuple[str, int, str], now: str) -> bool:
        name, count, _first = known
        patch = {"count": count + 1, "lastTimestamp": now}
        try:
            await self._call(self._core.patch_namespaced_event, name, namespace, patch)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:  # expired (Events live an hour): post a new one
                return False
            raise
        return True

    async def _create(self, ref: ObjectRef, type_: str, reason: str, message: str, now: str) -> str:
        body: Any = {
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._identity,
        }
        created: Any = await self._call(self._core.create_namespaced_event, ref.namespace, body)
        return str(created.metadata.name)
