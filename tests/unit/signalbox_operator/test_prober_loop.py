"""One prober's rounds against a fake writer: nothing without the lease, failures of the
operator's own shown as status, conflicts answered by reading what is there now."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import kubernetes
import pytest
import urllib3

from signalbox_api.provider import (
    SELF_TEST_ANNOTATION,
    CircuitState,
    LLMProviderSpec,
    SelfTestStatus,
)
from signalbox_operator.kube import Current, Kube, ObjectRef, Render, Written
from signalbox_operator.metrics import Metrics
from signalbox_operator.probing import refs
from signalbox_operator.probing.probe_traffic import ProbeTraffic
from signalbox_operator.probing.prober import (
    ERROR_RETRY_SECONDS,
    NOT_LEADING_SECONDS,
    POKE_GAP,
    REFS_GRACE,
    REFS_RETRY,
    Prober,
    Runtime,
)
from signalbox_operator.selftest import trigger
from signalbox_operator.status.circuit import Circuit
from tests.support.misbehaving import Misbehaving
from tests.support.operator import free_port


class FakeKube:
    def __init__(self) -> None:
        self.leading = True
        self.writes: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.answers: list[Written] = []
        self.current: dict[str, Any] = {}

    def may_write(self) -> bool:
        return self.leading

    async def write_status(
        self, plural: str, namespace: str, name: str, render: Render, uid: str | None = None
    ) -> Written:
        """As Kube's: a conflict reads the object again and renders once more."""
        answer = self._answer(render(None))
        if answer != Written.CONFLICT:
            return answer
        return self._answer(render(await self.read_status(plural, namespace, name)))

    def _answer(self, status: dict[str, Any]) -> Written:
        answer = self.answers.pop(0) if self.answers else Written.WRITTEN
        if answer == Written.WRITTEN:
            self.writes.append(status)
        return answer

    async def read_status(
        self, plural: str, namespace: str, name: str, uid: str | None = None
    ) -> Current | None:
        return Current(status=self.current, version="9")

    async def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def body(url: str) -> Mapping[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1", "generation": 1},
        "spec": {
            "type": "OpenAICompatible",
            "endpoint": {"url": url},
            "healthCheck": {"interval": "5s", "timeout": "1s"},
        },
    }


def prober(kube: FakeKube, url: str, http: httpx.AsyncClient, secret: Any = None) -> Prober:
    lookups = refs.Lookups(
        secret=secret or (lambda _k: None), service=lambda _k: None, endpoints=lambda _k: []
    )
    rt = Runtime(
        kube=cast(Kube, kube),
        http=http,
        metrics=Metrics(),
        lookups=lookups,
        provider_changed=lambda _ns: None,
        traffic=ProbeTraffic(share_seconds=0),  # every round probes: the loop is under test
    )
    return Prober(rt, body(url))


def ready(status: dict[str, Any]) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == "Ready")
    return (c["status"], c["reason"])


async def test_nothing_is_probed_or_written_without_the_lease(server: Misbehaving) -> None:
    kube = FakeKube()
    kube.leading = False
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        assert await p.round() == NOT_LEADING_SECONDS
    assert kube.writes == []
    assert server.seen == {}


async def test_an_operator_failure_is_ready_false_with_an_event(server: Misbehaving) -> None:
    kube = FakeKube()

    def broken(_key: Any) -> None:
        raise RuntimeError("sk-secret-in-an-exception")

    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        await p.round()
        assert ready(kube.writes[-1]) == ("True", "Ready")
        p.body = {
            **p.body,
            "spec": {**p.body["spec"], "auth": {"secretRef": {"name": "s", "key": "k"}}},
        }
        p.rt.lookups = refs.Lookups(secret=broken, service=lambda _k: None, endpoints=lambda _k: [])
        p.changed = True
        assert await p.round() == ERROR_RETRY_SECONDS
    assert ready(kube.writes[-1]) == ("False", "OperatorError")
    assert "RuntimeError" in str(kube.writes[-1])
    assert ("Warning", "OperatorError") in [e[:2] for e in kube.events]
    assert "sk-secret" not in str(kube.writes) + str(kube.events)


async def test_a_conflict_rebases_on_the_status_there_now(server: Misbehaving) -> None:
    kube = FakeKube()
    kube.answers = [Written.CONFLICT]
    kube.current = {"conditions": [], "circuit": {"state": "Open"}}
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        await p.round()
    assert len(kube.writes) == 1, "written once, after reading the current status"
    assert p.body["status"] == kube.current
    assert ready(kube.writes[0]) == ("True", "Ready")


class RefusingKube(FakeKube):
    """The first status write fails with ``error``; the rest succeed."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error: BaseException | None = error

    async def write_status(
        self, plural: str, namespace: str, name: str, render: Render, uid: str | None = None
    ) -> Written:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return await super().write_status(plural, namespace, name, render, uid)


@pytest.mark.parametrize(
    ("error", "reported"),
    [
        (kubernetes.client.ApiException(status=422), True),
        (kubernetes.client.ApiException(status=413), True),
        (kubernetes.client.ApiException(status=503), False),
        (urllib3.exceptions.MaxRetryError(None, "/"), False),
    ],
    ids=["refused", "too-large", "busy", "away"],
)
async def test_a_refused_status_is_an_operator_error_an_outage_is_not(
    server: Misbehaving, error: BaseException, reported: bool
) -> None:
    kube = RefusingKube(error)
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        assert await p.round() == ERROR_RETRY_SECONDS
    if reported:
        assert ready(kube.writes[-1]) == ("False", "OperatorError")
        assert f"HTTP {getattr(error, 'status', '')}" in str(kube.writes[-1])
    else:
        assert kube.writes == []
        assert kube.events == []


async def test_a_provider_created_moments_ago_waits_for_its_secret(server: Misbehaving) -> None:
    """Applied with its Secret, it may reach the operator first: not called broken at once."""
    kube = FakeKube()
    secrets: dict[Any, dict[str, str]] = {}
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http, secret=secrets.get)
        created = p.rt.clock() - timedelta(seconds=1)
        p.body = {
            "metadata": {**p.body["metadata"], "creationTimestamp": created.isoformat()},
            "spec": {**p.body["spec"], "auth": {"secretRef": {"name": "s", "key": "k"}}},
        }
        assert await p.round() == REFS_RETRY
        assert kube.writes == []
        secrets[("ns", "s")] = {"k": "sk-test"}
        await p.round()
        assert ready(kube.writes[-1]) == ("True", "Ready")
        # Past the grace, a missing Secret is reported as such.
        late = prober(kube, server.url("ok", "a"), http)
        old = (created - REFS_GRACE).isoformat()
        late.body = {
            "metadata": {**late.body["metadata"], "creationTimestamp": old},
            "spec": {**late.body["spec"], "auth": {"secretRef": {"name": "s", "key": "k"}}},
        }
        await late.round()
        assert ready(kube.writes[-1]) == ("False", "SecretNotFound")


def _state(p: Prober) -> CircuitState:
    return p.circuit.state


def _point_at(p: Prober, url: str) -> None:
    p.body = {**p.body, "spec": {**p.body["spec"], "endpoint": {"url": url}}}


async def test_a_verdict_in_doubt_is_probed_every_second_and_written_at_once(
    server: Misbehaving,
) -> None:
    """A first failure, a half-open circuit and a recovery are probed every second, not at the
    30 s interval; an opened or closed circuit is written within a second."""
    kube = FakeKube()
    shift = [0.0]
    async with httpx.AsyncClient() as http:
        p = prober(kube, f"http://127.0.0.1:{free_port()}/v1", http)
        p.body["spec"]["healthCheck"]["interval"] = "30s"
        p.rt.clock = lambda: datetime.now(UTC) + timedelta(seconds=shift[0])

        async def probe_again() -> float:
            shift[0] += 1.5  # past the second that separates verdict writes
            p.next_probe = p.rt.clock()
            return await p.round()

        assert await p.round() <= 1.2, "a first failure is confirmed within a second"
        assert await probe_again() <= 1.2
        assert await probe_again() > 20, "open: probed at the interval again"
        assert _state(p) == CircuitState.OPEN
        assert kube.writes[-1]["circuit"]["state"] == "Open"
        assert ready(kube.writes[-1])[0] == "False"
        _point_at(p, server.url("ok", "a"))  # the provider heals while the circuit is open
        assert await probe_again() <= 1.2, "a probe that succeeds half-opens the circuit at once"
        assert _state(p) == CircuitState.HALF_OPEN
        assert await probe_again() > 20, "closed again: back to the interval"
        assert _state(p) == CircuitState.CLOSED
        assert kube.writes[-1]["circuit"]["state"] == "Closed"
        assert ready(kube.writes[-1]) == ("True", "Ready")


async def test_the_end_of_an_open_period_is_a_probe(server: Misbehaving) -> None:
    kube = FakeKube()
    async with httpx.AsyncClient() as http:
        p = prober(kube, f"http://127.0.0.1:{free_port()}/v1", http)
        p.body["spec"]["healthCheck"]["interval"] = "1h"
        p.body["spec"]["circuitBreaker"] = {"failureThreshold": 1, "openDuration": "5s"}
        await p.round()
        assert _state(p) == CircuitState.OPEN
        assert p.next_probe is not None
        assert p.circuit.open_until is not None
        assert p.next_probe <= p.circuit.open_until


async def test_a_changed_reference_is_probed_at_once_but_not_twice_a_second(
    server: Misbehaving,
) -> None:
    kube = FakeKube()
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        p.body["spec"]["healthCheck"]["interval"] = "1h"
        await p.round()
        assert p.probed_at is not None
        assert p.next_probe is not None
        assert (p.next_probe - p.probed_at).total_seconds() > 3000
        p.poke()
        assert p.wake.is_set()
        assert p.next_probe - p.probed_at == POKE_GAP
        p.probed_at -= timedelta(seconds=5)  # a while ago: now
        p.poke()
        assert abs((p.next_probe - p.rt.clock()).total_seconds()) < 0.5


def test_references_name_the_secret_the_service_and_its_slices() -> None:
    spec = {
        "auth": {"secretRef": {"name": "creds", "key": "k"}},
        "endpoint": {"service": {"name": "vllm", "namespace": "gpu", "port": 80}},
    }
    assert refs.references(spec, "ns") == {
        ("secrets", "ns", "creds"),
        ("services", "gpu", "vllm"),
        ("endpointslices", "gpu", "vllm"),
    }
    assert refs.references({"endpoint": {"url": "http://x"}}, "ns") == frozenset()
    assert refs.references(None, "ns") == frozenset()
    assert refs.references({"auth": "junk", "endpoint": {"service": {"name": 3}}}, "ns") == set()


async def test_a_self_test_is_recorded_first_runs_beside_the_probes_and_once(
    server: Misbehaving, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()
    ran: list[dict[str, Any]] = []  # what status said when each run began
    release = asyncio.Event()

    async def suite(*_args: Any) -> SelfTestStatus:
        ran.append(dict(kube.writes[-1].get("selfTest") or {}))
        await release.wait()
        return SelfTestStatus(time=datetime.now(UTC), passed=True, trigger=trigger.RUN)

    monkeypatch.setattr(trigger, "run", suite)
    shift = [0.0]
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        p.rt.clock = lambda: datetime.now(UTC) + timedelta(seconds=shift[0])
        p.body["metadata"]["annotations"] = {SELF_TEST_ANNOTATION: trigger.RUN}
        await p.round()
        await asyncio.sleep(0.01)
        assert len(ran) == 1
        assert ran[0]["trigger"] == "run", "the run was recorded before it began"
        assert "passed" not in ran[0]
        probes = len(server.seen["ok/a"])
        p.next_probe = None
        await p.round()  # the suite still runs: the probes go on
        assert len(server.seen["ok/a"]) > probes

        # A new leader finds the record of a run no one finishes: closed, never run again.
        other = prober(kube, server.url("ok", "a"), http)
        other.body = {**p.body, "status": kube.writes[-1]}
        await other.round()
        closed = kube.writes[-1]["selfTest"]
        assert closed["passed"] is False
        assert "interrupted" in closed["checks"][0]["message"]
        assert len(ran) == 1

        release.set()
        await asyncio.sleep(0.01)
        await p.round()
        assert kube.writes[-1]["selfTest"]["passed"] is True
        # Toggled off and on again at once: held back by the cooldown, then run once.
        p.body["metadata"]["annotations"] = {}
        await p.round()
        p.body["metadata"]["annotations"] = {SELF_TEST_ANNOTATION: trigger.RUN}
        await p.round()
        await asyncio.sleep(0.01)
        assert len(ran) == 1, "not within the cooldown"
        shift[0] += trigger.COOLDOWN_SECONDS + 1
        await p.round()
        await asyncio.sleep(0.01)
        assert len(ran) == 2


async def test_an_open_circuit_of_a_suspended_provider_does_not_spin(server: Misbehaving) -> None:
    kube = FakeKube()
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        p.body["spec"]["suspend"] = True
        past = datetime.now(UTC) - timedelta(seconds=60)
        p.circuit = Circuit(state=CircuitState.OPEN, since=past, open_until=past, trips=1)
        assert await p.round() > 1, "the past end of an open period is no reason to wake"
        assert await p.round() > 1


async def test_a_rate_limit_is_heeded_not_confirmed_every_second(server: Misbehaving) -> None:
    kube = FakeKube()
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        spec = LLMProviderSpec.model_validate(p.body["spec"])
        soon = datetime.now(UTC) + timedelta(seconds=300)
        p.circuit = Circuit(consecutive_failures=1, healthy=True, rate_limited_until=soon)
        assert p._interval(spec) > 4, "5 s interval: no confirming burst while asked to wait"
        p.circuit = Circuit(consecutive_failures=1, healthy=True)
        assert p._interval(spec) < 1.2


async def test_a_reference_changed_while_a_probe_is_out_is_probed_soon_after(
    server: Misbehaving, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        p.body["spec"]["healthCheck"]["interval"] = "1h"
        probe = p._probe

        async def probe_and_meanwhile_a_pod_turns_ready(*args: Any, **kwargs: Any) -> None:
            await probe(*args, **kwargs)
            p.poke()  # the EndpointSlice changed while the probe was out

        monkeypatch.setattr(p, "_probe", probe_and_meanwhile_a_pod_turns_ready)
        await p.round()
        assert p.probed_at is not None
        assert p.next_probe is not None
        assert p.next_probe - p.probed_at <= POKE_GAP


async def test_a_self_test_whose_start_was_never_written_is_dropped_when_unasked(
    server: Misbehaving,
) -> None:
    kube = FakeKube()
    kube.leading = True
    async with httpx.AsyncClient() as http:
        p = prober(kube, server.url("ok", "a"), http)
        p.body["metadata"]["annotations"] = {SELF_TEST_ANNOTATION: trigger.RUN}
        p.rt.kube = cast(Kube, RefusingKube(kubernetes.client.ApiException(status=503)))
        await p.round()  # the start is recorded in memory; its write fails
        assert p.suite_to_start is not None
        assert p.suite is None
        p.body["metadata"]["annotations"] = {}
        await p.round()
        assert p.suite_to_start is None, "no longer asked: nothing left waiting to start"
