"""One probe loop per LLMProvider: resolve references, probe, step the circuit, write status.

The loop reads the latest object the watch delivered (``update``); a spec or annotation change
wakes it at once, and so does a change to the Secret, Service or EndpointSlices it refers to
(``poke``): pods that became ready, or went away, are probed at once, not at the next interval.
While a verdict is in doubt (a first failure, a half-open circuit, a provider coming back) it
probes every second until the thresholds decide. Cancelling the task (object deleted) stops it.

Each loop has at most one probe in flight, bounded by the provider's own timeout (never longer
than its interval; describing new models adds at most ``http_probe.DESCRIBE_SECONDS``), so probe
concurrency grows with the number of providers and hanging providers hold up nobody but
themselves. Nothing is probed or written without the lease. What
probes find is written at most once per interval; what people change, at once. An unexpected
error in a round is shown as Ready=False with reason OperatorError and an Event, never a
silent retry that leaves the last verdict standing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import kubernetes
import urllib3
from opentelemetry import trace

from signalbox_api import conditions
from signalbox_api.conditions import ConditionType
from signalbox_api.primitives import parse_duration
from signalbox_api.provider import (
    CIRCUIT_ANNOTATION,
    SELF_TEST_ANNOTATION,
    CircuitOverride,
    CircuitState,
    LLMProviderSpec,
    LLMProviderStatus,
    SelfTestStatus,
)
from signalbox_operator.kube import Current, Kube, ObjectRef, Written
from signalbox_operator.leadership.fencing import NotLeading
from signalbox_operator.metrics import Metrics
from signalbox_operator.probing import http_probe, refs, spec_reading
from signalbox_operator.probing.probe_trace import ProbeTrace
from signalbox_operator.probing.probe_traffic import ProbeTraffic
from signalbox_operator.probing.secret_values import SecretValues
from signalbox_operator.selftest import trigger
from signalbox_operator.status import circuit as circuits
from signalbox_operator.status import discovery, provider_status, uptime, worth_writing
from signalbox_operator.status.discovery import Discovered
from signalbox_providers.outcomes import Outcome

log = logging.getLogger(__name__)
WINDOW = 20
IDLE_SECONDS = 300.0
PENDING_AFTER = 1.0  # a new provider shows Unknown conditions if its first probe takes longer
# A provider applied with its Secret (one `kubectl apply`) may reach the operator before the
# Secret does: the watches of the two kinds run apart. For this long after its creation, a new
# provider whose references do not resolve is looked at again soon instead of being called
# broken.
REFS_GRACE = timedelta(seconds=5)
REFS_RETRY = 0.5
# A probe that a referenced object's change asks for waits this long after the last one.
POKE_GAP = timedelta(seconds=1)
SPREAD_PER_PROBER = 0.005  # first probes of many providers are spread, 5 ms apart on average
ERROR_RETRY_SECONDS = 5.0
NOT_LEADING_SECONDS = 1.0
_REFUSED = (400, 403, 413, 422)  # the write itself is wrong: retrying it unchanged cannot help


@dataclass
class Runtime:
    """What every prober shares."""

    kube: Kube
    http: httpx.AsyncClient
    metrics: Metrics
    lookups: refs.Lookups
    provider_changed: Callable[[str], None]  # wakes the policies of a namespace
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    limits: http_probe.ProbeLimits = field(default_factory=http_probe.ProbeLimits)
    running: int = 0  # probe loops alive, to spread their first probes
    suites: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(trigger.MAX_SUITES))
    secrets: SecretValues = field(default_factory=SecretValues)
    tracer: trace.Tracer | None = None  # a span per probe and per status write, when tracing
    traffic: ProbeTraffic = field(default_factory=ProbeTraffic)  # shared, paced, bounded


@dataclass(frozen=True)
class _Round:
    """What one round read from the object and its references."""

    spec: LLMProviderSpec
    generation: int | None
    resolved: provider_status.Refs
    override: CircuitOverride | None
    problem: str  # why the circuit annotation is ignored, or ''


class Prober:
    def __init__(self, runtime: Runtime, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self.rt = runtime
        self.ref = ObjectRef(
            "LLMProvider", "llmproviders", meta["namespace"], meta["name"], meta.get("uid")
        )
        self.body = spec_reading.kept(body)
        self.wake = asyncio.Event()
        self.changed = True  # spec or annotation changed: probe at once
        self.circuit = spec_reading.restore(body.get("status"))
        self.depends_on = refs.references(body.get("spec"), self.ref.namespace)
        self.probed_at: datetime | None = None
        self.poked = False
        self.written: dict[str, Any] | None = None
        self.written_at: datetime | None = None
        # What the next round needs of the status last written, parsed (``_slim``): its
        # conditions (their transition times), circuit and self-test, without parsing the wire
        # form again; the rest of it (health, models, uptime) only as ``written``.
        self.status: LLMProviderStatus | None = None
        self.last_probe: provider_status.ProbeReport | None = None
        self.last_success: datetime | None = None
        self.window: collections.deque[bool] = collections.deque(maxlen=WINDOW)
        self.history = uptime.History()
        self.self_test: SelfTestStatus | None = None
        # A self-test runs beside the probes, in its own task, once its start is written.
        self.suite: asyncio.Task[SelfTestStatus] | None = None
        self.suite_to_start: tuple[LLMProviderSpec, provider_status.Refs] | None = None
        self.suite_allowed_at: datetime | None = None  # the cooldown after the last run
        self.discovered: Discovered | None = None
        self.next_probe: datetime | None = None
        self.write_after: datetime | None = None  # a write held back until its slot
        self.warned = ""
        kind = str((body.get("spec") or {}).get("type", ""))
        tracer = runtime.tracer
        self.trace = None if tracer is None else ProbeTrace(tracer, self.ref, kind)

    def update(self, body: Mapping[str, Any]) -> None:
        old = self.body["metadata"]
        # Once it has written a status, the loop holds what it wrote; the echo is not kept.
        self.body = spec_reading.kept(body, status=self.written is None)
        new = self.body["metadata"]
        if old.get("generation") != new.get("generation") or _annotation(old) != _annotation(new):
            self.depends_on = refs.references(body.get("spec"), self.ref.namespace)
            self.changed = True
            self.wake.set()

    def poke(self) -> None:
        """Something the provider refers to changed: probe now, or ``POKE_GAP`` after the last
        probe, whichever is later (a Deployment rolling its pods changes its slices often)."""
        self.poked = True  # seen after a probe in flight now, which resolved the old references
        soon = self.rt.clock()
        if self.probed_at is not None:
            soon = max(soon, self.probed_at + POKE_GAP)
        if self.next_probe is None or soon < self.next_probe:
            self.next_probe = soon
            self.wake.set()

    async def run(self) -> None:
        self.rt.metrics.probers.inc()
        self.rt.running += 1
        try:
            spread = min(10.0, SPREAD_PER_PROBER * self.rt.running)
            await asyncio.sleep(random.uniform(0, spread))  # noqa: S311 (jitter)
            while True:
                delay = await self.round()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            if self.suite is not None:
                self.suite.cancel()
            self.rt.running -= 1
            self.rt.metrics.probers.dec()
            spec_type = str(self.body.get("spec", {}).get("type", ""))
            self.rt.metrics.forget_provider(self.ref.namespace, self.ref.name, spec_type)

    async def round(self) -> float:
        """One tick, with every failure of the operator's own turned into status."""
        if not self.rt.kube.may_write():
            return NOT_LEADING_SECONDS
        try:
            return await self.tick()
        except NotLeading:
            return NOT_LEADING_SECONDS
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # the API server is away
            log.warning("status of %s/%s not written: %s", *self._key()[1:], type(exc).__name__)
            return ERROR_RETRY_SECONDS
        except kubernetes.client.ApiException as exc:
            if exc.status not in _REFUSED:  # a busy or restarting API server: try again soon
                log.warning("status of %s/%s not written: HTTP %s", *self._key()[1:], exc.status)
                return ERROR_RETRY_SECONDS
            await self._operator_error(f"the API server refused the status (HTTP {exc.status})")
            return ERROR_RETRY_SECONDS
        except Exception as exc:  # shown in status, not retried in silence
            error = type(exc).__name__
            log.error("probe loop of %s/%s failed: %s", self.ref.namespace, self.ref.name, error)
            await self._operator_error(error)
            return ERROR_RETRY_SECONDS

    async def tick(self) -> float:
        """One round; returns the seconds until the next."""
        meta = self.body["metadata"]
        spec, invalid = spec_reading.parse_spec(self.body.get("spec"))
        generation = meta.get("generation")
        annotations = meta.get("annotations")
        override = circuits.parse_override(annotations, CIRCUIT_ANNOTATION)
        problem = circuits.override_problem(annotations, CIRCUIT_ANNOTATION)
        await self._warn(problem)
        now = self.rt.clock()
        if spec is None:
            facts = provider_status.Facts(
                spec=None, generation=generation, now=now, invalid=invalid
            )
            await self._publish(facts, 0.0)
            return IDLE_SECONDS
        interval = parse_duration(spec.health_check.interval)
        if spec.auth is not None:  # its key, read from the API server when its Secret changed
            secret = (self.ref.namespace, spec.auth.secret_ref.name)
            shape = self.rt.lookups.shape(secret)
            if shape is not None:
                try:
                    await self.rt.secrets.ensure(secret, spec.auth.secret_ref.key, shape)
                except kubernetes.client.ApiException as exc:  # say so; resolve says "not read"
                    log.warning("Secret %s/%s not read: HTTP %s", *secret, exc.status)
        resolved = refs.resolve(spec, self.ref.namespace, self.rt.lookups)
        if not resolved.ok and self._just_created(meta, now):
            return REFS_RETRY
        r = _Round(spec, generation, resolved, override, problem)
        if self.changed or self.next_probe is None or now >= self.next_probe:
            # A referenced object changed: no probe begun before will do. (A changed spec or
            # Secret changes the probe's identity: nothing older is shared with it anyway.)
            fresh = self.poked
            self.changed = self.poked = False
            await self._maybe_probe(r, now, fresh=fresh)
            self.probed_at = self.rt.clock()
            self.next_probe = self.probed_at + timedelta(seconds=self._interval(spec))
            end = self.circuit.open_until
            if end is not None and end > self.probed_at:  # the open period's end is a probe too
                self.next_probe = min(self.next_probe, end)
            if self.poked:  # a reference changed while the probe was out: probe it soon
                self.next_probe = min(self.next_probe, self.probed_at + POKE_GAP)
        await self._self_test(r, annotations)
        now = self.rt.clock()
        await self._publish(self._facts(r, now), interval)
        self._start_suite()
        return self._delay(now)

    def _just_created(self, meta: Mapping[str, Any], now: datetime) -> bool:
        """Whether the object is new (nothing written for it yet) and created moments ago."""
        if self.written is not None or self.body.get("status"):
            return False
        try:
            created = datetime.fromisoformat(str(meta.get("creationTimestamp")))
        except ValueError:
            return False
        return timedelta(0) <= now - created < REFS_GRACE

    async def _self_test(self, r: _Round, annotations: Mapping[str, str] | None) -> None:
        """The self-test's record for this round: a finished run's result, a run to start
        (recorded now, started once written: ``_start_suite``), or a run some operator before
        this one never finished (``interrupted``)."""
        now = self.rt.clock()
        last = self.self_test if self.self_test is not None else self._previous().self_test
        if self.suite is not None and self.suite.done():
            last = self._suite_result(self.suite, last)
            self.suite, self.suite_allowed_at = None, trigger.next_allowed(now)
            if last.passed is False:
                await self.rt.kube.event(
                    self.ref, "Warning", "SelfTestFailed", trigger.summary(last)
                )
        last = trigger.settled(annotations, last)
        if self.suite_to_start is not None and not trigger.running(last):
            self.suite_to_start = None  # its start was never written, and is no longer asked
        mine = self.suite is not None or self.suite_to_start is not None
        if last is not None and trigger.running(last) and not mine:
            last = trigger.interrupted(last)
        if (
            trigger.wanted(annotations, last)
            and r.resolved.ok
            and not r.spec.suspend
            and not mine
            and (self.suite_allowed_at is None or now >= self.suite_allowed_at)
        ):
            last = trigger.started(now)
            self.suite_to_start = (r.spec, r.resolved)
        self.self_test = last

    def _start_suite(self) -> None:
        """Start the run recorded in the status just written; never before it is written."""
        written = self.status.self_test if self.status is not None else None
        if self.suite_to_start is None or not trigger.running(written):
            return
        spec, resolved = self.suite_to_start
        self.suite_to_start = None
        self.suite = asyncio.create_task(
            self._run_suite(spec, resolved), name=f"self-test {self.ref.name}"
        )
        self.suite.add_done_callback(lambda _: self.wake.set())

    async def _run_suite(
        self, spec: LLMProviderSpec, resolved: provider_status.Refs
    ) -> SelfTestStatus:
        async with self.rt.suites:  # at most MAX_SUITES at once in the operator
            known = spec_reading.parse_status(self.written or self.body.get("status"))
            return await trigger.run(self.rt.http, spec, resolved, known, self.rt.clock())

    def _suite_result(
        self, task: asyncio.Task[SelfTestStatus], last: SelfTestStatus | None
    ) -> SelfTestStatus:
        if not task.cancelled() and task.exception() is None:
            return task.result()
        error = "cancelled" if task.cancelled() else type(task.exception()).__name__
        log.error("self-test of %s/%s failed: %s", self.ref.namespace, self.ref.name, error)
        base = last or trigger.started(self.rt.clock())
        return trigger.interrupted(base, f"the suite failed ({error})")

    async def _maybe_probe(self, r: _Round, now: datetime, *, fresh: bool) -> None:
        spec, resolved = r.spec, r.resolved
        if spec.suspend or not resolved.ok:
            return
        self.circuit = circuits.advance(self.circuit, now)
        if self.written is not None or self.body.get("status"):
            await self._probe(spec, resolved, fresh=fresh)
            return
        # A new provider shows Unknown conditions, unless its first verdict comes quickly.
        probing_ = asyncio.ensure_future(self._probe(spec, resolved, fresh=fresh))
        try:
            done, _ = await asyncio.wait({probing_}, timeout=PENDING_AFTER)
            if not done:
                await self._publish(self._facts(r, now), 0.0)
            await probing_
        finally:
            probing_.cancel()  # the loop was cancelled: its probe goes with it

    async def _probe(
        self, spec: LLMProviderSpec, resolved: provider_status.Refs, *, fresh: bool
    ) -> None:
        known = self.discovered.facts if self.discovered is not None else {}
        with contextlib.nullcontext() if self.trace is None else self.trace.probe() as span:
            report = await self.rt.traffic.probe(
                http_probe.identity(spec, resolved, known),
                http_probe.host(resolved),
                partial(http_probe.probe, self.rt.http, spec, resolved, self.rt.limits, known),
                fresh=fresh,
                had=self.last_probe,
            )
            settings = circuits.CircuitSettings.from_spec(spec)
            self.circuit = circuits.observe(
                self.circuit, report.outcome, report.at, settings, report.retry_after
            )
            if span is not None:
                ProbeTrace.probed(span, report, self.circuit.state)
        self.last_probe = report
        ok = report.outcome == Outcome.SUCCESS
        self.window.append(ok)
        self.history.record(report.at, ok)
        if ok:
            self.last_success = report.at
            if report.models is not None:
                self.discovered = discovery.remember(report.models, known)
        m = self.rt.metrics
        m.probe_duration.labels(spec.type.value).observe(report.latency_ms / 1000)
        m.probe_outcomes.labels(self.ref.namespace, self.ref.name, report.outcome.value).inc()

    def _facts(self, r: _Round, now: datetime) -> provider_status.Facts:
        rate = sum(self.window) / len(self.window) if self.window else None
        return provider_status.Facts(
            spec=r.spec,
            generation=r.generation,
            now=now,
            refs=r.resolved,
            circuit=self.circuit,
            override=r.override,
            last_probe=self.last_probe,
            last_success=self.last_success,
            success_rate=rate,
            last_hour=self.history.summary(now, uptime.HOUR),
            last_day=self.history.summary(now, uptime.DAY),
            discovered=self.discovered,
            self_test=self.self_test,
            annotation_problem=r.problem,
        )

    def _previous(self) -> LLMProviderStatus:
        return self.status or spec_reading.parse_status(self.body.get("status"))

    def _wrote(self, wire: dict[str, Any], at: datetime, status: LLMProviderStatus) -> None:
        """``status`` (``wire`` on the wire) is what the API server holds now."""
        self.written, self.written_at, self.status = wire, at, _slim(status)

    async def _publish(self, facts: provider_status.Facts, min_gap: float) -> None:
        previous = self._previous()
        status = provider_status.compute(facts, previous.conditions)
        wire = status.to_wire()
        if self.written is None and wire == self.body.get("status"):
            self._wrote(wire, facts.now, status)
        if not worth_writing.should_write(self.written, wire, self.written_at, facts.now, min_gap):
            self.write_after = None
            if self.written is not None and self.written_at is not None and wire != self.written:
                wait = worth_writing.gap(self.written, wire, min_gap)
                self.write_after = self.written_at + timedelta(seconds=wait)
            return

        def render(current: Current | None) -> dict[str, Any]:
            nonlocal previous, status, wire
            if current is None:
                return wire
            # Someone else wrote since: start again from what the API server has now.
            self.body = {**self.body, "status": current.status}
            self.written, self.status = None, None
            previous = self._previous()
            status = provider_status.compute(facts, previous.conditions)
            wire = status.to_wire()
            return wire

        before = _circuit_state(previous)
        with contextlib.nullcontext() if self.trace is None else self.trace.write(before) as span:
            written = await self.rt.kube.write_status(*self._key(), render, self.ref.uid)
            ready = conditions.find(status.conditions, ConditionType.READY)
            is_ready = ready is not None and ready.status == "True"
            state = _circuit_state(status)
            if span is not None:
                ProbeTrace.written(span, written, is_ready, state)
        if written != Written.WRITTEN:
            return
        self.write_after = None
        self._wrote(wire, facts.now, status)
        await self._announce(previous, status)
        self.rt.metrics.set_provider(
            self.ref.namespace,
            self.ref.name,
            str(self.body["spec"].get("type", "")),
            is_ready,
            state,
        )
        self.rt.provider_changed(self.ref.namespace)

    def _key(self) -> tuple[str, str, str]:
        return (self.ref.plural, self.ref.namespace, self.ref.name)

    async def _operator_error(self, error: str) -> None:
        now = self.rt.clock()
        facts = provider_status.Facts(
            spec=None, generation=self.body["metadata"].get("generation"), now=now
        )
        try:
            previous = self._previous()
            status = provider_status.failed(facts, previous.conditions, error)
            wire = status.to_wire()
            if wire != self.written:  # the same failure again is written and told once
                written = await self.rt.kube.write_status(
                    *self._key(), lambda _: wire, self.ref.uid
                )
                if written == Written.WRITTEN:
                    self._wrote(wire, now, status)
                    self.rt.provider_changed(self.ref.namespace)
                await self.rt.kube.event(
                    self.ref,
                    "Warning",
                    "OperatorError",
                    f"the operator failed on this provider: {error}",
                )
        except NotLeading:
            return
        except Exception as exc:  # the API server may be what failed
            log.warning(
                "could not report the failure of %s/%s: %s",
                self.ref.namespace,
                self.ref.name,
                type(exc).__name__,
            )

    async def _warn(self, problem: str) -> None:
        if problem and problem != self.warned:
            await self.rt.kube.event(self.ref, "Warning", "InvalidAnnotation", problem)
        self.warned = problem

    async def _announce(self, before: LLMProviderStatus, after: LLMProviderStatus) -> None:
        """Events for what a human should see: circuit transitions and Ready flips (and a
        provider that is not Ready from the start)."""
        old_state = before.circuit.state if before.circuit else CircuitState.CLOSED
        new_state = after.circuit.state if after.circuit else CircuitState.CLOSED
        if old_state != new_state and after.circuit is not None:
            kind = "Warning" if new_state == CircuitState.OPEN else "Normal"
            await self.rt.kube.event(
                self.ref,
                kind,
                f"Circuit{new_state.value}",
                f"circuit {old_state.value} -> {new_state.value}",
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

    def _interval(self, spec: LLMProviderSpec) -> float:
        """Seconds to the next probe: the interval, or ``CONFIRM_SECONDS`` while in doubt."""
        interval = parse_duration(spec.health_check.interval)
        c = self.circuit
        asked_to_wait = c.rate_limited(self.rt.clock())  # a 429 is heeded, not confirmed
        if circuits.in_doubt(c, circuits.CircuitSettings.from_spec(spec)) and not asked_to_wait:
            interval = min(interval, circuits.CONFIRM_SECONDS)
        return interval * random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not crypto)

    def _delay(self, now: datetime) -> float:
        wake_at = [self.next_probe] if self.next_probe else []
        if self.write_after is not None:
            wake_at.append(self.write_after)
        if self.suite_allowed_at is not None and now < self.suite_allowed_at:
            wake_at.append(self.suite_allowed_at)  # a run the cooldown held back
        if not wake_at:
            return IDLE_SECONDS
        return max(0.05, (min(wake_at) - now).total_seconds())


def _slim(status: LLMProviderStatus) -> LLMProviderStatus:
    """What a round reads of the last status: a third of its memory (thousands of providers
    hold one each)."""
    return LLMProviderStatus.model_construct(
        conditions=status.conditions, circuit=status.circuit, self_test=status.self_test
    )


def _circuit_state(status: LLMProviderStatus) -> CircuitState:
    return status.circuit.state if status.circuit else CircuitState.CLOSED


def _annotation(meta: Mapping[str, Any]) -> tuple[str | None, ...]:
    annotations = meta.get("annotations") or {}
    return tuple(
        None if annotations.get(k) is None else str(annotations.get(k))
        for k in (CIRCUIT_ANNOTATION, SELF_TEST_ANNOTATION)
    )
