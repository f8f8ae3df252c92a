"""One probe loop per LLMProvider: resolve references, probe, step the circuit, write status.

The loop reads the latest object the watch delivered (``update``), so a changed spec, Secret,
Service or EndpointSlice takes effect by the next tick; a spec or annotation change wakes it
at once. Cancelling the task (object deleted) stops it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic

from signalbox_api import conditions
from signalbox_api.conditions import ConditionType, Reason
from signalbox_api.primitives import parse_duration
from signalbox_api.provider import (
    CIRCUIT_ANNOTATION,
    CircuitState,
    LLMProviderSpec,
    LLMProviderStatus,
)
from signalbox_operator import circuit as circuits
from signalbox_operator import probing, provider_status, refs
from signalbox_operator.kube import Kube, ObjectRef
from signalbox_operator.metrics import Metrics
from signalbox_providers.outcomes import Outcome

log = logging.getLogger(__name__)
WINDOW = 20
IDLE_SECONDS = 300.0
PENDING_AFTER = 1.0  # a new provider shows Unknown conditions if its first probe takes longer
SPREAD_PER_PROBER = 0.005  # first probes of many providers are spread, 5 ms apart on average
MAX_CONCURRENT_PROBES = 64


@dataclass
class Runtime:
    """What every prober shares."""

    kube: Kube
    http: httpx.AsyncClient
    metrics: Metrics
    lookups: refs.Lookups
    provider_changed: Callable[[str], None]  # wakes the policies of a namespace
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    probe_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_PROBES)
    )
    running: int = 0  # probe loops alive, to spread their first probes


def parse_spec(raw: Any) -> tuple[LLMProviderSpec | None, str | None]:
    """The spec, or why it is unacceptable (for what the schema cannot check)."""
    try:
        spec = LLMProviderSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"spec.{where}: {first['msg']}"
    names: dict[str, str] = {}
    for model in spec.models:
        for alias in (model.name, *model.aliases):
            if alias in names and names[alias] != model.name:
                return None, (
                    f"spec.models: name {alias!r} is used by both {names[alias]!r} "
                    f"and {model.name!r}"
                )
            names[alias] = model.name
    return spec, None


def restore(status: Mapping[str, Any] | None) -> circuits.Circuit:
    """The circuit as the last status recorded it, so a restart or failover keeps it."""
    if not status:
        return circuits.Circuit()
    try:
        parsed = LLMProviderStatus.model_validate(status)
    except pydantic.ValidationError:
        return circuits.Circuit()
    healthy_cond = conditions.find(parsed.conditions, ConditionType.HEALTHY)
    healthy: bool | None = None
    last_failure: Outcome | None = None
    if healthy_cond is not None and healthy_cond.status != "Unknown":
        # A missing model is no fault of the provider's health; the circuit saw it healthy.
        healthy = healthy_cond.status == "True" or healthy_cond.reason == Reason.MODEL_NOT_FOUND
        last_failure = provider_status.OUTCOME_OF_REASON.get(healthy_cond.reason)
    c = parsed.circuit
    if c is None or c.override is not None:
        return circuits.Circuit(healthy=healthy, last_failure=last_failure)
    return circuits.Circuit(
        last_failure=last_failure,
        state=c.state,
        since=c.since,
        open_until=c.open_until,
        consecutive_failures=c.consecutive_failures,
        trips=c.trips,
        healthy=healthy,
    )


class Prober:
    def __init__(self, runtime: Runtime, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self.rt = runtime
        self.ref = ObjectRef(
            "LLMProvider", "llmproviders", meta["namespace"], meta["name"], meta.get("uid")
        )
        self.body = body
        self.wake = asyncio.Event()
        self.circuit = restore(body.get("status"))
        self.written: dict[str, Any] | None = None
        self.written_at: datetime | None = None
        # The status last written, parsed: the next round's transition times and Events start
        # from it without parsing the wire form again.
        self.status: LLMProviderStatus | None = None
        self.last_probe: provider_status.ProbeReport | None = None
        self.last_success: datetime | None = None
        self.window: collections.deque[bool] = collections.deque(maxlen=WINDOW)
        self.discovered: tuple[str, ...] | None = None

    def update(self, body: Mapping[str, Any]) -> None:
        old = self.body["metadata"]
        new = body["metadata"]
        self.body = body
        if old.get("generation") != new.get("generation") or _annotation(old) != _annotation(new):
            self.wake.set()

    async def run(self) -> None:
        self.rt.metrics.probers.inc()
        self.rt.running += 1
        try:
            spread = min(10.0, SPREAD_PER_PROBER * self.rt.running)
            await asyncio.sleep(random.uniform(0, spread))  # noqa: S311 (jitter)
            while True:
                try:
                    delay = await self.tick()
                except Exception:
                    log.exception(
                        "probe loop of %s/%s failed; retrying", self.ref.namespace, self.ref.name
                    )
                    delay = 5.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                self.wake.clear()
        finally:
            self.rt.running -= 1
            self.rt.metrics.probers.dec()
            spec_type = str(self.body.get("spec", {}).get("type", ""))
            self.rt.metrics.forget_provider(self.ref.namespace, self.ref.name, spec_type)

    async def tick(self) -> float:
        """One round; returns the seconds until the next."""
        spec, invalid = parse_spec(self.body.get("spec"))
        generation = self.body["metadata"].get("generation")
        override = circuits.parse_override(
            self.body["metadata"].get("annotations"), CIRCUIT_ANNOTATION
        )
        now = self.rt.clock()
        if spec is None:
            facts = provider_status.Facts(
                spec=None, generation=generation, now=now, invalid=invalid
            )
            await self._publish(facts)
            return IDLE_SECONDS
        resolved = refs.resolve(spec, self.ref.namespace, self.rt.lookups)
        fresh = self.written is None and not self.body.get("status")
        if not spec.suspend and resolved.ok:
            self.circuit = circuits.advance(self.circuit, now)
            if self.circuit.state != CircuitState.OPEN and not fresh:
                await self._probe(spec, resolved)
            elif self.circuit.state != CircuitState.OPEN:
                # A new provider shows Unknown conditions, unless its first verdict comes quickly.
                probing = asyncio.ensure_future(self._probe(spec, resolved))
                done, _ = await asyncio.wait({probing}, timeout=PENDING_AFTER)
                if not done:
                    await self._publish(self._facts(spec, generation, now, resolved, override))
                await probing
        now = self.rt.clock()
        await self._publish(self._facts(spec, generation, now, resolved, override))
        return self._delay(spec, now)

    async def _probe(self, spec: LLMProviderSpec, resolved: provider_status.Refs) -> None:
        async with self.rt.probe_slots:  # the probe's own timeout starts once it has a slot
            report = await probing.probe(self.rt.http, spec, resolved)
        settings = circuits.Settings.from_spec(spec)
        self.circuit = circuits.observe(
            self.circuit, report.outcome, report.at, settings, report.retry_after
        )
        self.last_probe = report
        ok = report.outcome == Outcome.SUCCESS
        self.window.append(ok)
        if ok:
            self.last_success = report.at
            if report.models is not None:
                self.discovered = report.models
        m = self.rt.metrics
        m.probe_duration.labels(spec.type.value).observe(report.latency_ms / 1000)
        m.probe_outcomes.labels(self.ref.namespace, self.ref.name, report.outcome.value).inc()

    def _facts(
        self,
        spec: LLMProviderSpec,
        generation: int | None,
        now: datetime,
        resolved: provider_status.Refs,
        override: Any,
    ) -> provider_status.Facts:
        rate = sum(self.window) / len(self.window) if self.window else None
        return provider_status.Facts(
            spec=spec,
            generation=generation,
            now=now,
            refs=resolved,
            circuit=self.circuit,
            override=override,
            last_probe=self.last_probe,
            last_success=self.last_success,
            success_rate=rate,
            discovered=self.discovered,
        )

    async def _publish(self, facts: provider_status.Facts) -> None:
        previous = self.status or LLMProviderStatus.model_validate(self.body.get("status") or {})
        status = provider_status.compute(facts, previous.conditions)
        wire = status.to_wire()
        if not provider_status.should_write(self.written, wire, self.written_at, facts.now):
            return
        if not await self.rt.kube.patch_status(
            self.ref.plural, self.ref.namespace, self.ref.name, wire
        ):
            return
        self.written, self.written_at, self.status = wire, facts.now, status
        await self._announce(previous, status)
        ready = conditions.find(status.conditions, ConditionType.READY)
        state = status.circuit.state if status.circuit else CircuitState.CLOSED
        self.rt.metrics.set_provider(
            self.ref.namespace,
            self.ref.name,
            str(self.body["spec"].get("type", "")),
            ready is not None and ready.status == "True",
            state,
        )
        self.rt.provider_changed(self.ref.namespace)

    async def _announce(self, before: LLMProviderStatus, after: LLMProviderStatus) -> None:
        """Events for what a human should see: circuit transitions and Ready flips (and a
        provider that is not Ready from the start)."""
        old_state = before.circuit.state if before.circuit else CircuitState.CLOSED
        new_state = after.circuit.state if after.circuit else CircuitState.CLOSED
        if old_state != new_state:
            kind = "Warning" if new_state == CircuitState.OPEN else "Normal"
            until = after.circuit.open_until if after.circuit else None
            detail = f" until {until.isoformat()}" if until else ""
            await self.rt.kube.event(
                self.ref,
                kind,
                f"Circuit{new_state.value}",
                f"circuit {old_state.value} -> {new_state.value}{detail}",
            )
        was = conditions.find(before.conditions, ConditionType.READY)
        now = conditions.find(after.conditions, ConditionType.READY)
        was_status = was.status if was else "Unknown"
        if now is None or now.status in (was_status, "Unknown"):
            return
        if now.status == "True" and was_status == "Unknown":
            return  # becoming Ready for the first time is the expected, quiet case
        ok = now.status == "True"
        await self.rt.kube.event(
            self.ref,
            "Normal" if ok else "Warning",
            "Ready" if ok else "NotReady",
            now.message or now.reason,
        )

    def _delay(self, spec: LLMProviderSpec, now: datetime) -> float:
        interval = parse_duration(spec.health_check.interval)
        delay = interval * random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not crypto)
        c = self.circuit
        if c.state == CircuitState.OPEN and c.open_until is not None:
            delay = max(0.05, min(delay, (c.open_until - now).total_seconds()))
        return delay


def _annotation(meta: Mapping[str, Any]) -> str | None:
    value = (meta.get("annotations") or {}).get(CIRCUIT_ANNOTATION)
    return str(value) if value is not None else None
