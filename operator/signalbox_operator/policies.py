"""Keeps every RoutingPolicy's status in step with the providers it uses.

One loop for all policies: it wakes when a provider or policy in a namespace changes (or every
``RESYNC_SECONDS``), recomputes the affected policies with ``policy_status`` and writes only
the ones whose status changed. Policies of one namespace that claim the same model names are
compared as the router compares them (``eligibility.conflicts``), so the loser's status says
which policy serves the names it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic
from kubernetes.client import ApiException

from signalbox_api import discovered, eligibility
from signalbox_api.conditions import Condition
from signalbox_api.policy import RoutingPolicySpec, RoutingPolicyStatus
from signalbox_api.provider import LLMProviderSpec, LLMProviderStatus
from signalbox_operator.kube import Current, Kube, ObjectRef, Written
from signalbox_operator.leadership.fencing import NotLeading
from signalbox_operator.metrics import Metrics
from signalbox_operator.probing import spec_reading
from signalbox_operator.status import policy_status

log = logging.getLogger(__name__)
RESYNC_SECONDS = 10.0
Key = tuple[str, str]


@dataclass(frozen=True)
class Claim:
    """A RoutingPolicy as the model-name rule sees it (``eligibility.Claimant``)."""

    name: str
    created: str
    spec: RoutingPolicySpec


class Policies:
    def __init__(
        self, kube: Kube, clock: Callable[[], datetime], metrics: Metrics | None = None
    ) -> None:
        self.kube = kube
        # The writer for a policy, None when another replica's shard holds it (``handlers``).
        self.writer: Callable[[Key], Kube | None] = lambda _key: self.kube
        self.metrics = metrics
        self.clock = clock
        self.policies: dict[Key, Mapping[str, Any]] = {}
        self.providers: dict[Key, Mapping[str, Any]] = {}
        self._views: dict[Key, tuple[str, policy_status.ProviderView | None]] = {}
        self._specs: dict[Key, tuple[str, RoutingPolicySpec | None]] = {}
        self.written: dict[Key, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()

    def policy_event(self, key: Key, body: Mapping[str, Any] | None) -> None:
        if body is None:
            self.policies.pop(key, None)
            self._specs.pop(key, None)
            self.let_go({key})
        else:
            self.policies[key] = body
        self._touch(key[0])

    def provider_event(self, key: Key, body: Mapping[str, Any] | None) -> None:
        if body is None:
            self.providers.pop(key, None)
        else:
            self.providers[key] = spec_reading.kept(body)
        self._touch(key[0])

    def let_go(self, keys: set[Key]) -> None:
        """This replica no longer writes these policies (deleted, or their shard is another's):
        it forgets what it wrote and stops exporting their figures."""
        for key in keys:
            self.written.pop(key, None)
            if self.metrics is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.policy_eligible.remove(*key)

    def take_over(self, keys: set[Key]) -> None:
        """This replica now writes these policies: what it wrote before (in an earlier hold of
        their shard) may have been overwritten since, so each is computed and compared anew."""
        for key in keys:
            self.written.pop(key, None)
            self._touch(key[0])

    def touch(self, namespace: str) -> None:
        self._touch(namespace)

    def _touch(self, namespace: str) -> None:
        self.dirty.add(namespace)
        self.wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_SECONDS):
                    await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(0.2)  # gather a burst of events into one pass
            namespaces, self.dirty = self.dirty, set()
            everything = not namespaces
            for key in list(self.policies):
                if everything or key[0] in namespaces:
                    try:
                        await self.reconcile(key)
                    except Exception:
                        log.exception("could not reconcile RoutingPolicy %s/%s", *key)

    def _views_in(self, namespace: str) -> dict[str, policy_status.ProviderView]:
        out = {}
        for (ns, name), body in self.providers.items():
            if ns != namespace:
                continue
            view = self._view((ns, name), body)
            if view is not None:
                out[name] = view
        return out

    def _view(self, key: Key, body: Mapping[str, Any]) -> policy_status.ProviderView | None:
        meta = body["metadata"]
        version = str(meta.get("resourceVersion"))
        cached = self._views.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            status = LLMProviderStatus.model_validate(body.get("status") or {})
            view: policy_status.ProviderView | None = policy_status.ProviderView(
                name=meta["name"],
                labels=meta.get("labels") or {},
                generation=meta.get("generation"),
                spec=discovered.effective(LLMProviderSpec.model_validate(body.get("spec")), status),
                status=status,
            )
        except pydantic.ValidationError:
            view = None
        self._views[key] = (version, view)
        return view

    def _conflicts(
        self, key: Key, spec: RoutingPolicySpec, views: Mapping[str, policy_status.ProviderView]
    ) -> list[eligibility.Conflict]:
        """The model names this policy claims that an older one in its namespace serves."""
        claims = []
        for (ns, name), body in self.policies.items():
            if ns != key[0]:
                continue
            other = spec if name == key[1] else self._spec((ns, name), body)
            if other is not None:
                created = str(body["metadata"].get("creationTimestamp", ""))
                claims.append(Claim(name, created, other))
        mine = next(c for c in claims if c.name == key[1])
        known = {n for v in views.values() for m in v.spec.models for n in (m.name, *m.aliases)}
        return eligibility.conflicts(mine, claims, sorted(known))

    def _spec(self, key: Key, body: Mapping[str, Any]) -> RoutingPolicySpec | None:
        """A policy's parsed spec, parsed again only when the object changed."""
        version = str(body["metadata"].get("resourceVersion"))
        cached = self._specs.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            spec: RoutingPolicySpec | None = RoutingPolicySpec.model_validate(body.get("spec"))
        except pydantic.ValidationError:
            spec = None
        self._specs[key] = (version, spec)
        return spec

    async def reconcile(self, key: Key) -> None:
        body = self.policies.get(key)
        kube = self.writer(key)
        if body is None or kube is None:
            return
        try:
            spec = RoutingPolicySpec.model_validate(body.get("spec"))
        except pydantic.ValidationError as exc:
            log.warning("RoutingPolicy %s/%s has an invalid spec: %s", *key, exc.errors()[0]["msg"])
            return
        previous = RoutingPolicyStatus.model_validate(
            self.written.get(key) or body.get("status") or {}
        )
        views = self._views_in(key[0])
        conflicts = self._conflicts(key, spec, views)
        generation = body["metadata"].get("generation")

        def computed(conditions: Sequence[Condition]) -> RoutingPolicyStatus:
            return policy_status.compute(
                spec, generation, views, conditions, self.clock(), conflicts=conflicts
            )

        status = computed(previous.conditions)
        if self.metrics is not None:
            eligible = sum(1 for p in status.providers if p.eligible)
            self.metrics.policy_eligible.labels(*key).set(eligible)
        wire = status.to_wire()
        if wire == self.written.get(key) or (
            key not in self.written and wire == body.get("status")
        ):
            self.written[key] = wire
            return

        def render(current: Current | None) -> dict[str, Any]:
            nonlocal wire
            if current is not None:  # someone wrote since: conditions carry on from theirs
                theirs = RoutingPolicyStatus.model_validate(current.status or {})
                wire = computed(theirs.conditions).to_wire()
            return wire

        try:
            uid = body["metadata"].get("uid")
            written = await kube.write_status("routingpolicies", *key, render, uid)
        except NotLeading:
            return
        except Exception as exc:  # an outage: one line, and the next pass retries
            why = f"HTTP {exc.status}" if isinstance(exc, ApiException) else type(exc).__name__
            log.warning("could not write the status of RoutingPolicy %s/%s: %s", *key, why)
            return
        if written == Written.WRITTEN:
            self.written[key] = wire
            after = RoutingPolicyStatus.model_validate(wire).conditions
            await self._tell(kube, key, body, policy_status.changes(previous.conditions, after))

    async def _tell(
        self,
        kube: Kube,
        key: Key,
        body: Mapping[str, Any],
        changes: Sequence[policy_status.Change],
    ) -> None:
        """An Event (and a log line) for each condition that moved."""
        uid = body["metadata"].get("uid")
        ref = ObjectRef("RoutingPolicy", "routingpolicies", key[0], key[1], uid)
        for change in changes:
            said = f"{change.type} is {change.status}" + (
                f": {change.message}" if change.message else ""
            )
            await kube.event(ref, "Warning" if change.warning else "Normal", change.reason, said)
