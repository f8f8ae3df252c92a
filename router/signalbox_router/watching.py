"""Kubernetes mode: list and watch what the router needs into a fresh Snapshot.

LLMProviders, RoutingPolicies, Secrets, Services and EndpointSlices of one namespace are each
listed and then watched in a worker thread (the official client is synchronous), re-listed in
full every ``resync`` seconds. Every change rebuilds the snapshot off the request path. When
the API server goes away the last good snapshot keeps serving; only ``/readyz`` notices.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pydantic

from signalbox_api import GROUP, VERSION, endpoints
from signalbox_api.conditions import ConditionType
from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider
from signalbox_router.snapshot import PolicyEntry, ProviderEntry, Snapshot
from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
Objects = dict[str, dict[str, Any]]


@dataclass
class Store:
    """The raw objects as last seen, by kind and name."""

    kinds: dict[str, Objects] = field(default_factory=dict)
    synced_at: float = 0.0

    def objects(self, kind: str) -> Objects:
        return self.kinds.setdefault(kind, {})


def _ready(obj: dict[str, Any]) -> tuple[bool, str]:
    status = obj.get("status") or {}
    cond = next(
        (c for c in status.get("conditions") or [] if c.get("type") == ConditionType.READY), None
    )
    if cond is None:
        return False, "NoStatus"
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False, "StaleStatus"
    return cond.get("status") == "True", str(cond.get("reason", ""))


def _provider_endpoints(provider: LLMProvider, namespace: str, store: Store) -> tuple[str, ...]:
    spec = provider.spec
    if spec.endpoint.url:
        return (spec.endpoint.url,)
    svc = spec.endpoint.service
    if svc is None:
        return ()
    ns = svc.namespace or namespace
    service = store.objects("services").get(svc.name)
    if service is None or ns != namespace:
        return ()
    port = next((p for p in endpoints.parse_service(service) if p.port == svc.port), None)
    if port is None:
        return ()
    found = [
        e
        for s in store.objects("endpointslices").values()
        if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == svc.name
        for e in endpoints.parse_slice(s)
        if e.ready
    ]
    return tuple(endpoints.endpoint_url(svc, e, port) for e in found)


def _secret(store: Store, name: str, key: str) -> str | None:
    data = (store.objects("secrets").get(name) or {}).get("data") or {}
    value = data.get(key)
    return base64.b64decode(value).decode().strip() if value else None


def build(store: Store, namespace: str) -> Snapshot:
    providers: dict[str, ProviderEntry] = {}
    for name, obj in store.objects("llmproviders").items():
        try:
            provider = LLMProvider.model_validate(obj)
        except pydantic.ValidationError:
            continue
        auth = provider.spec.auth
        key = _secret(store, auth.secret_ref.name, auth.secret_ref.key) if auth else None
        ready, reason = _ready(obj)
        providers[name] = ProviderEntry(
            name=name,
            spec=provider.spec,
            api_key=key,
            ready=ready,
            reason=reason,
            endpoints=_provider_endpoints(provider, namespace, store),
            labels=obj["metadata"].get("labels") or {},
        )
    policies = []
    for name, obj in store.objects("routingpolicies").items():
        with contextlib.suppress(pydantic.ValidationError):
            policies.append(
                PolicyEntry(
                    name,
                    RoutingPolicy.model_validate(obj).spec,
                    created=str(obj["metadata"].get("creationTimestamp")),
                )
            )
    return Snapshot(providers=providers, policies=tuple(policies))


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
            store.kinds[kind.name] = items
            store.synced_at = time.monotonic()
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
                if event["type"] == "DELETED":
                    items.pop(name, None)
                elif event["type"] in ("ADDED", "MODIFIED") and name:
                    items[name] = obj
                store.synced_at = time.monotonic()
                changed()
            backoff = 1.0
        except Exception as exc:  # keep serving from the last snapshot, and keep trying
            log.warning(
                "watching %s failed (%s); retrying in %.0fs", kind.name, type(exc).__name__, backoff
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)


async def run(state: RouterState, namespace: str, resync: float) -> None:
    """Keep ``state.snapshot`` in step with the cluster until cancelled."""
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
    threads = [
        threading.Thread(
            target=_list_and_watch,
            name=f"watch-{k.name}",
            daemon=True,
            args=(watcher, k),
        )
        for k in _kinds(api, namespace)
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            await dirty.wait()
            dirty.clear()
            await asyncio.sleep(0.05)  # one rebuild for a burst of events
            state.snapshot = build(store, namespace)
            state.synced_at = store.synced_at
    finally:
        stop.set()
