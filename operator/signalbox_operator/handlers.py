"""kopf registrations: the watches and indexes, and the glue that feeds probers and policies.

kopf only watches here. Its bookkeeping would go to annotations (never to status), and no
handler adds finalizers, so deleting an object never waits for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from signalbox_api import GROUP, VERSION
from signalbox_operator.kube import Kube
from signalbox_operator.leadership import shards
from signalbox_operator.leadership.fencing import Fence
from signalbox_operator.policies import Policies
from signalbox_operator.probing import refs
from signalbox_operator.probing.prober import Prober, Runtime

STATE_KEY = "signalbox"
Key = tuple[str, str]


@dataclass
class Sharding:
    """The shards of a replica that runs as one of several (``leadership.shard_elector``)."""

    count: int
    fence: Callable[[int], Fence]  # each shard's fence
    held: dict[int, Runtime] = field(default_factory=dict)  # what each held shard's work uses


@dataclass
class OperatorState:
    runtime: Runtime
    policies: Policies
    probers: dict[Key, tuple[Prober, asyncio.Task[None]]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Which providers refer to each Secret, Service and EndpointSlice: a change is told to
    # those alone, and a Secret no provider refers to any more is let go.
    users: dict[refs.Reference, set[Key]] = field(default_factory=dict)
    # None: this process works on everything while its term lasts (one Lease, or none).
    sharding: Sharding | None = None

    def shard(self, key: Key) -> int:
        return 0 if self.sharding is None else shards.shard_of(*key, self.sharding.count)

    def runtime_for(self, key: Key) -> Runtime | None:
        """What the work on ``key`` uses; None when another replica's shard holds it."""
        if self.sharding is None:
            return self.runtime
        return self.sharding.held.get(self.shard(key))

    def writer_for(self, key: Key) -> Kube | None:
        runtime = self.runtime_for(key)
        return None if runtime is None else runtime.kube

    def resolve(self, lookups: refs.Lookups) -> None:
        """kopf's indexes are up: references resolve from now on, in every shard."""
        self.runtime.lookups = lookups
        for runtime in self.sharding.held.values() if self.sharding else ():
            runtime.lookups = lookups

    def shards_changed(self, gained: set[int], lost: set[int]) -> None:
        """Stop the work of the shards lost (their fences are closed already) and start the
        work of those gained, from the objects the watches delivered: probe loops carry on
        from the status the last holder wrote, and every policy of the shard is looked at."""
        sharding = self.sharding
        assert sharding is not None
        for key in [k for k in self.probers if self.shard(k) in lost]:
            self.stop_prober(key)
        for shard in lost:
            sharding.held.pop(shard, None)
        self.policies.let_go({k for k in self.policies.policies if self.shard(k) in lost})
        for shard in gained:
            kube = self.runtime.kube.under(sharding.fence(shard))
            sharding.held[shard] = dataclasses.replace(self.runtime, kube=kube)
        for key, body in list(self.policies.providers.items()):
            if self.shard(key) in gained:
                self.ensure_prober(key, body)
        self.policies.take_over({k for k in self.policies.policies if self.shard(k) in gained})

    def ensure_prober(self, key: Key, body: Mapping[str, Any]) -> None:
        runtime = self.runtime_for(key)
        if runtime is None:
            self.stop_prober(key)
            return
        running = self.probers.get(key)
        if running is not None:
            prober, task = running
            same = prober.rt is runtime and prober.ref.uid == body["metadata"].get("uid")
            if not task.done() and same:
                before = prober.depends_on
                prober.update(body)
                self._refer(key, prober.depends_on - before)
                self._unrefer(key, before - prober.depends_on)
                return
            self.stop_prober(key)  # ended, or another object of that name: a new loop
        prober = Prober(runtime, body)
        task = asyncio.create_task(prober.run(), name=f"probe {key[0]}/{key[1]}")
        self.probers[key] = (prober, task)
        self._refer(key, prober.depends_on)

    def poke(self, reference: refs.Reference) -> None:
        """A Secret, Service or EndpointSlice changed: the providers that refer to it probe."""
        for key in self.users.get(reference, ()):
            prober, task = self.probers[key]
            if not task.done():
                prober.poke()

    def stop_prober(self, key: Key) -> None:
        running = self.probers.pop(key, None)
        if running is not None:
            running[1].cancel()
            self._unrefer(key, running[0].depends_on)

    def _refer(self, key: Key, references: Iterable[refs.Reference]) -> None:
        for reference in references:
            self.users.setdefault(reference, set()).add(key)

    def _unrefer(self, key: Key, references: Iterable[refs.Reference]) -> None:
        for reference in references:
            keys = self.users.get(reference, set())
            keys.discard(key)
            if keys:
                continue
            self.users.pop(reference, None)
            if reference[0] == "secrets":
                self.runtime.secrets.forget(reference[1:])


def state_of(memo: Any) -> OperatorState:
    state: OperatorState = memo[STATE_KEY]
    return state


def _first(index: kopf.Index[Key, Any], key: Key) -> Any:
    store = index.get(key)
    return next(iter(store), None) if store else None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    secret_index: kopf.Index[Key, refs.SecretShape] = kwargs["secret_index"]
    service_index: kopf.Index[Key, Sequence[refs.ServicePort]] = kwargs["service_index"]
    slice_index: kopf.Index[Key, Sequence[refs.SliceEndpoint]] = kwargs["slice_index"]
    prefix = f"kopf.{GROUP}"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    settings.posting.enabled = False  # Events are posted explicitly, for transitions only
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330

    def endpoints(key: Key) -> list[refs.SliceEndpoint]:
        return [e for value in slice_index.get(key) or () for e in value]

    state = state_of(memo)

    def shape(key: Key) -> refs.SecretShape | None:
        found: refs.SecretShape | None = _first(secret_index, key)
        return found

    def secret(key: Key) -> Mapping[str, str | int] | None:
        found = shape(key)
        return None if found is None else state.runtime.secrets.view(key, found)

    state.resolve(
        refs.Lookups(
            secret=secret,
            shape=shape,
            service=lambda key: _first(service_index, key),
            endpoints=endpoints,
        )
    )
    state.tasks.append(asyncio.create_task(state.policies.run(), name="policies"))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state = state_of(memo)
    tasks = [t for _, t in state.probers.values()] + state.tasks
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    await state.runtime.http.aclose()


@kopf.index("v1", "secrets")
def secret_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, refs.SecretShape]:
    """Each Secret's version and key sizes, never a value (``probing.secret_values``)."""
    version = body.get("metadata", {}).get("resourceVersion")
    return {(namespace or "", name): refs.secret_shape(version, body.get("data") or {})}


@kopf.index("v1", "services")
def service_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, Any]:
    return {(namespace or "", name): refs.parse_service(body)}


@kopf.index("discovery.k8s.io", "v1", "endpointslices")
def slice_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Any] | None:
    service = labels.get("kubernetes.io/service-name")
    if not service:
        return None
    return {(namespace or "", service): refs.parse_slice(body)}


@kopf.on.event("v1", "secrets")
async def secret_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    state_of(memo).poke(("secrets", namespace or "", name))


@kopf.on.event("v1", "services")
async def service_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    state_of(memo).poke(("services", namespace or "", name))


@kopf.on.event("discovery.k8s.io", "v1", "endpointslices")
async def slice_event(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    service = labels.get("kubernetes.io/service-name")
    if service:
        state_of(memo).poke(("endpointslices", namespace or "", service))


def _key(obj: Mapping[str, Any]) -> Key:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])


def _seen(state: OperatorState, plural: str, event: kopf.RawEvent) -> None:
    """Tell the writer which version of the object the watch delivered last."""
    meta = event["object"]["metadata"]
    kube = state.runtime.kube
    if event["type"] == "DELETED":
        kube.forget(plural, meta["namespace"], meta["name"])
    else:
        kube.observe(plural, meta["namespace"], meta["name"], meta.get("resourceVersion"))


@kopf.on.event(GROUP, VERSION, "llmproviders")
async def provider_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    state = state_of(memo)
    obj = event["object"]
    key = _key(obj)
    _seen(state, "llmproviders", event)
    if event["type"] == "DELETED":
        state.stop_prober(key)
        state.policies.provider_event(key, None)
        return
    state.ensure_prober(key, obj)
    state.policies.provider_event(key, obj)


@kopf.on.event(GROUP, VERSION, "routingpolicies")
async def policy_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    obj = event["object"]
    state = state_of(memo)
    _seen(state, "routingpolicies", event)
    state.policies.policy_event(_key(obj), None if event["type"] == "DELETED" else obj)
