"""Kubernetes mode: list and watch what the router needs into a fresh Snapshot.

LLMProviders, RoutingPolicies, Secrets, Services and EndpointSlices of one namespace are each
listed and then watched in a worker thread (the official client is synchronous), re-listed in
full every ``resync`` seconds. Every change rebuilds the snapshot off the request path, from a
copy of the objects taken under the store's lock, once every kind has been listed (a restarted
watch serves the last snapshot until then). When the API server goes away the last good
snapshot keeps serving; only ``/readyz`` notices. An
object that cannot be used (a provider the models refuse, a Secret whose value is not base64 of
UTF-8 text) keeps its last good version and is named, with the reason, in a log line and in
``/readyz``; the other objects are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import kubernetes

from signalbox_api import GROUP, VERSION
from signalbox_router import supervision
from signalbox_router.sources.cluster_snapshot import Store, build
from signalbox_router.state import RouterState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kind:
    name: str
    list_fn: Callable[..., Any]
    args: tuple[Any, ...]


def _kinds(api: kubernetes.client.ApiClient, namespace: str) -> list[_Kind]:
    custom = kubernetes.client.CustomObjectsApi(api)
    core = kubernetes.client.CoreV1Api(api)
    discovery = kubernetes.client.DiscoveryV1Api(api)
    return [
        _Kind(
            "llmproviders",
            custom.list_namespaced_custom_object,
            (GROUP, VERSION, namespace, "llmproviders"),
        ),
        _Kind(
            "routingpolicies",
            custom.list_namespaced_custom_object,
            (GROUP, VERSION, namespace, "routingpolicies"),
        ),
        _Kind("secrets", core.list_namespaced_secret, (namespace,)),
        _Kind("services", core.list_namespaced_service, (namespace,)),
        _Kind("endpointslices", discovery.list_namespaced_endpoint_slice, (namespace,)),
    ]


def _plain(api: kubernetes.client.ApiClient, obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = obj if isinstance(obj, dict) else api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return out


@dataclass(frozen=True)
class _Watcher:
    api: kubernetes.client.ApiClient
    store: Store
    changed: Callable[[], None]
    stop: threading.Event
    resync: float


def _list_and_watch(w: _Watcher, kind: _Kind) -> None:
    api, store, changed, stop, resync = w.api, w.store, w.changed, w.stop, w.resync
    backoff = 1.0
    while not stop.is_set():
        try:
            listed = _plain(api, kind.list_fn(*kind.args, _request_timeout=30))
            items = {i["metadata"]["name"]: i for i in listed.get("items") or []}
            store.listed(kind.name, items, time.monotonic())
            changed()
            version = listed["metadata"].get("resourceVersion")
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            for event in watch.stream(  # type: ignore[no-untyped-call]
                kind.list_fn,
                *kind.args,
                resource_version=version,
                timeout_seconds=int(resync),
                _request_timeout=resync + 15,
            ):
                if stop.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]
                    break
                obj = _plain(api, event["object"])
                name = obj.get("metadata", {}).get("name")
                if name:
                    store.seen(kind.name, event["type"], name, obj, time.monotonic())
                changed()
            backoff = 1.0
        except Exception as exc:  # keep serving from the last snapshot, and keep trying
            if _refused(exc):
                store.refuse(kind.name, f"listing {kind.name} is refused ({exc.status})")
                changed()
            log.warning(
                "watching %s failed (%s); retrying in %.0fs", kind.name, type(exc).__name__, backoff
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)


def _refused(exc: Exception) -> TypeGuard[kubernetes.client.ApiException]:
    """The API server answered and said no (403, 404): retrying alone will not mend it."""
    status = getattr(exc, "status", None)
    return isinstance(exc, kubernetes.client.ApiException) and status in (401, 403, 404)


async def run(
    state: RouterState, namespace: str, resync: float, health: supervision.Health | None = None
) -> None:
    """Keep ``state.snapshot`` in step with the cluster until cancelled; ``health`` hears when
    a snapshot was built."""
    health = health or supervision.Health("kubernetes-watch", {})
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    api = kubernetes.client.ApiClient()
    loop = asyncio.get_running_loop()
    store, stop, dirty = Store(), threading.Event(), asyncio.Event()

    def changed() -> None:
        loop.call_soon_threadsafe(dirty.set)

    watcher = _Watcher(api, store, changed, stop, resync)
    kinds = _kinds(api, namespace)
    threads = [
        threading.Thread(
            target=_list_and_watch,
            name=f"watch-{k.name}",
            daemon=True,
            args=(watcher, k),
        )
        for k in kinds
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            await dirty.wait()
            dirty.clear()
            await asyncio.sleep(0.05)  # one rebuild for a burst of events
            view = store.view(k.name for k in kinds)
            if view is None:  # not every kind listed yet: the last snapshot serves on
                continue
            built = build(view, namespace, state.snapshot)
            state.snapshot = built.snapshot
            state.synced_at = view.synced_at
            if built.problems != state.problems:
                for problem in built.problems:
                    if problem not in state.problems:
                        log.error("%s", problem)
                state.problems = built.problems
            if view.refused:
                health.fail("; ".join(sorted(view.refused.values())))
            else:
                health.ok()
    finally:
        stop.set()
