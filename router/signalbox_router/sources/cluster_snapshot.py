"""Kubernetes mode, the pure half: the objects last seen in the cluster into a Snapshot.

:mod:`signalbox_router.sources.watching` keeps a :class:`Store` of raw objects up to date;
:func:`build` turns it into the snapshot requests read. Each object is judged on its own: a
provider the models refuse, or one whose Secret value is not base64 of UTF-8 text that can be
sent as a header (``api_keys``), keeps its
version from the previous snapshot (a provider with no usable key and no previous one takes no
traffic), and the reason is returned as a problem that names the object and never holds a value."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from signalbox_api import api_keys, discovered, eligibility, endpoints
from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot
from signalbox_router.sources import secret_data

Objects = dict[str, dict[str, Any]]


@dataclass
class Store:
    """The raw objects as last seen, by kind and name.

    The watch threads change it through :meth:`listed`, :meth:`seen` and :meth:`refuse`, under
    one lock; the event loop builds from :meth:`view`, a copy taken under the same lock, so a
    build never reads a dict a thread is changing.
    """

    kinds: dict[str, Objects] = field(default_factory=dict)
    synced_at: float = 0.0
    # Kinds the API server refuses to list (RBAC, a missing CRD), with the reason. An
    # unreachable API server is not here: the last snapshot serves on while it is away.
    refused: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def objects(self, kind: str) -> Objects:
        return self.kinds.setdefault(kind, {})

    def listed(self, kind: str, items: Objects, now: float) -> None:
        with self.lock:
            self.kinds[kind] = items
            self.refused.pop(kind, None)
            self.synced_at = now

    def seen(self, kind: str, event: str, name: str, obj: dict[str, Any], now: float) -> None:
        """One watch event: an object ADDED, MODIFIED or DELETED."""
        with self.lock:
            items = self.objects(kind)
            if event == "DELETED":
                items.pop(name, None)
            elif event in ("ADDED", "MODIFIED"):
                items[name] = obj
            self.synced_at = now

    def refuse(self, kind: str, reason: str) -> None:
        with self.lock:
            self.refused[kind] = reason

    def view(self, kinds: Iterable[str]) -> Store | None:
        """A copy to build from, once each of ``kinds`` has been listed or refused (until then
        a snapshot would lack, say, the Secrets of providers already listed): None before."""
        with self.lock:
            if any(k not in self.kinds and k not in self.refused for k in kinds):
                return None
            copied = {kind: dict(items) for kind, items in self.kinds.items()}
            return Store(copied, self.synced_at, dict(self.refused))


def _last_success(provider: LLMProvider) -> float | None:
    """When the operator's probe last succeeded (a refused key may work again after it)."""
    health = provider.status.health
    when = health.last_success_time if health is not None else None
    return when.timestamp() if when is not None else None


def _provider_endpoints(provider: LLMProvider, namespace: str, store: Store) -> tuple[str, ...]:
    spec = provider.spec
    if spec.endpoint.url:
        return (spec.endpoint.url,)
    svc = spec.endpoint.service
    if svc is None:
        return ()
    ns = svc.namespace or namespace
    if ns != namespace:
        # Not watched here: the Service's own name, balanced by the cluster; whether its pods
        # are ready is the operator's verdict, which it resolves in any namespace.
        return (f"{svc.scheme}://{svc.name}.{ns}.svc:{svc.port}{svc.path}",)
    service = store.objects("services").get(svc.name)
    if service is None:
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
    if not value:
        return None
    text = secret_data.decode_one(key, value)
    why = api_keys.problem(text)
    if why is not None:
        raise secret_data.SecretDataError(f"data.{key}: {why}")
    return text


@dataclass(frozen=True)
class Built:
    """A snapshot and what could not be used in building it (object and why, never a value)."""

    snapshot: Snapshot
    problems: tuple[str, ...] = ()


def _first_error(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _provider(
    name: str, obj: dict[str, Any], store: Store, namespace: str, before: Snapshot
) -> tuple[ProviderEntry | None, str]:
    """The provider's entry, or its previous one (or none) with the reason."""
    old = before.providers.get(name)
    keep = "keeping its previous version" if old else "left out"
    try:
        provider = LLMProvider.model_validate(obj)
    except pydantic.ValidationError as exc:
        return old, f"LLMProvider {name}: {_first_error(exc)}; {keep}"
    # The operator's verdict, read by the same rule its policy status uses.
    out = eligibility.state(provider.spec, provider.status, obj["metadata"].get("generation"))
    ready, reason = out is None, str(out or "")
    auth, problem = provider.spec.auth, ""
    ref = auth.secret_ref if auth else None
    try:
        key = _secret(store, ref.name, ref.key) if ref else None
    except secret_data.SecretDataError as exc:
        key = old.api_key if old is not None else None
        then = "keeping the previous key" if key else "no traffic until it is fixed"
        problem = f"Secret {ref.name if ref else ''} (for LLMProvider {name}): {exc}; {then}"
        if key is None:
            ready, reason = False, "InvalidSecret"
    entry = ProviderEntry(
        name=name,
        spec=discovered.effective(provider.spec, provider.status),
        api_key=key,
        ready=ready,
        reason=reason,
        last_success=_last_success(provider),
        endpoints=_provider_endpoints(provider, namespace, store),
        labels=obj["metadata"].get("labels") or {},
    )
    return entry, problem


def build(store: Store, namespace: str, previous: Snapshot | None = None) -> Built:
    """A snapshot of the stored objects; an object that cannot be used keeps its version in
    ``previous`` (where there is one) and is named in ``problems``."""
    before = previous or Snapshot()
    problems: list[str] = []
    providers: dict[str, ProviderEntry] = {}
    for name, obj in store.objects("llmproviders").items():
        entry, problem = _provider(name, obj, store, namespace, before)
        if entry is not None:
            providers[name] = entry
        if problem:
            problems.append(problem)
    old_policies = {p.name: p for p in before.policies}
    policies = []
    for name, obj in store.objects("routingpolicies").items():
        try:
            spec = RoutingPolicy.model_validate(obj).spec
        except pydantic.ValidationError as exc:
            kept = old_policies.get(name)
            keep = "keeping its previous version" if kept else "left out"
            problems.append(f"RoutingPolicy {name}: {_first_error(exc)}; {keep}")
            if kept is not None:
                policies.append(kept)
            continue
        created = str(obj["metadata"].get("creationTimestamp"))
        policies.append(PolicyEntry(name, spec, created=created))
    return Built(Snapshot(providers=providers, policies=tuple(policies)), tuple(problems))
