"""Two operator replicas against a real API server that is paused, stopped and restarted:
one leader at a time, no status write by a replica not holding the Lease (checked in the API
server's own audit log), and a leader again soon after every outage."""

from __future__ import annotations

import bisect
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.controlplane.conftest import CLUSTER_NAME
from tests.support import cluster as cluster_support
from tests.support.cluster import Cluster
from tests.support.operator import (
    OperatorProcess,
    apiserver,
    audit_log,
    condition,
    lease_holder,
    wait_for,
)

MODEL = "gpt-4o-mini"
# Short leases keep the test short; the rule is the same as with the defaults (15/10/2).
LEASE = ["--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1"]
AGENT = "signalbox-operator/"


@pytest.fixture(scope="module")
def audited() -> Iterator[Cluster]:
    """A cluster of this module's own, with the audit log on, that it may stop and restart."""
    name = f"{CLUSTER_NAME}-audit"
    before = os.environ.get("SIGNALBOX_AUDIT")
    os.environ["SIGNALBOX_AUDIT"] = "1"
    try:
        started = cluster_support.start(name)
    except cluster_support.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if before is None:
            del os.environ["SIGNALBOX_AUDIT"]
        else:
            os.environ["SIGNALBOX_AUDIT"] = before
    yield started
    if not os.environ.get("SIGNALBOX_KEEP_CLUSTER"):
        cluster_support.stop(name)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def writes_without_the_lease(events: list[dict[str, Any]], namespace: str) -> list[str]:
    """Status patches and Events by an operator that did not hold the Lease for the whole
    time from the request's arrival to its response, from the API server's audit events."""

    def ok(e: dict[str, Any]) -> bool:
        code: int = e.get("responseStatus", {}).get("code", 0)
        return 200 <= code < 300

    mine = [e for e in events if e.get("objectRef", {}).get("namespace") == namespace and ok(e)]
    leases = sorted(
        (
            (_time(e["stageTimestamp"]), e["requestObject"]["spec"].get("holderIdentity"))
            for e in mine
            if e["objectRef"].get("resource") == "leases" and e.get("requestObject")
        ),
        key=lambda x: x[0],
    )
    times = [t for t, _ in leases]
    bad = []
    for e in mine:
        ref = e["objectRef"]
        is_status = ref.get("resource") == "llmproviders" and ref.get("subresource") == "status"
        if not (is_status or ref.get("resource") == "events"):
            continue
        writer = e.get("userAgent", "").removeprefix(AGENT)
        start, end = _time(e["requestReceivedTimestamp"]), _time(e["stageTimestamp"])
        first = bisect.bisect_right(times, start) - 1
        last = bisect.bisect_right(times, end)
        holders = {h for _, h in leases[max(first, 0) : last]} if first >= 0 else {None}
        if holders != {writer}:
            bad.append(f"{e['verb']} {ref.get('resource')} by {writer} at {end}: held {holders}")
    return bad


def provider(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": "cloud"},
        "spec": {
            "type": "OpenAI",
            "endpoint": {"url": url},
            "auth": {"secretRef": {"name": "creds", "key": "api-key"}},
            "models": [{"name": MODEL}],
            "healthCheck": {"interval": "1s", "timeout": "800ms", "unhealthyThreshold": 2},
            "circuitBreaker": {"failureThreshold": 2, "openDuration": "2s"},
        },
    }


def state(cluster: Cluster, namespace: str) -> tuple[str | None, str | None]:
    obj = cluster.get("llmp", "cloud", namespace)
    ready = condition(obj, "Ready")
    return (ready or {}).get("status"), obj.get("status", {}).get("circuit", {}).get("state")


def test_one_writer_through_a_pause_and_an_api_outage(audited: Cluster, tmp_path: Path) -> None:
    cluster = audited
    namespace = cluster.create_namespace("leader")
    key = f"sk-{uuid.uuid4().hex}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"api-key": key},
        },
        namespace,
    )
    with FakeProvider(
        "cloud", Flavor.OPENAI, [MODEL], host="127.0.0.2"
    ).running_in_thread() as fake:
        cluster.apply(provider(fake.base_url), namespace)
        a = OperatorProcess(cluster, namespace, tmp_path / "a.log", extra=[*LEASE, "-v"]).start()
        b = OperatorProcess(cluster, namespace, tmp_path / "b.log", extra=LEASE)
        try:
            wait_for(lambda: state(cluster, namespace) == ("True", "Closed"), 30, "Ready")
            b.start()
            wait_for(b.metrics, 15, "the standby's metrics")
            assert lease_holder(cluster, namespace) == a.identity

            # The leader freezes; the provider goes down; the standby takes over and says so.
            a.pause()
            fake.set_faults(status=503)
            wait_for(lambda: lease_holder(cluster, namespace) == b.identity, 20, "B leads")
            wait_for(lambda: state(cluster, namespace) == ("False", "Open"), 15, "Open by B")
            # The old leader wakes with Closed/Ready=True in memory: it must write nothing.
            a.resume()
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                assert state(cluster, namespace)[0] == "False", "a stale leader wrote status"
                time.sleep(0.3)
            assert a.alive()
            assert lease_holder(cluster, namespace) == b.identity

            # The API server goes away for longer than the renew deadline, then comes back.
            apiserver(cluster, "stop")
            time.sleep(8)
            apiserver(cluster, "start")
            back = time.monotonic()

            def leading() -> str | None:
                holder = lease_holder(cluster, namespace)
                who = {a.identity: a, b.identity: b}.get(holder or "")
                return holder if who and who.metric("signalbox_probers") == 1 else None

            wait_for(leading, 30, "a leader with a probe loop after the outage")
            assert time.monotonic() - back < 30
            assert a.alive(), "both replicas ride out the outage"
            assert b.alive(), "both replicas ride out the outage"
            fake.clear_faults()
            wait_for(lambda: state(cluster, namespace)[0] == "True", 30, "Ready again")
        finally:
            for op in (a, b):
                if op.alive():
                    op.resume()
                op.stop()
    assert a.proc is not None
    assert a.proc.returncode == 0
    assert b.proc is not None
    assert b.proc.returncode == 0
    logs = a.log() + b.log()
    assert key not in logs, "the key appeared in a log (A ran with -v)"
    assert "signalbox_operator/" not in logs, "a traceback through the operator's code"
    events = audit_log(cluster)
    assert writes_without_the_lease(events, namespace) == []
    writers = {
        e["userAgent"].removeprefix(AGENT)
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e["objectRef"].get("subresource") == "status"
        and 200 <= e.get("responseStatus", {}).get("code", 0) < 300
    }
    assert writers == {a.identity, b.identity}, "the audit saw both leaders write"


def _writers_in_order(events: list[dict[str, Any]], namespace: str) -> list[tuple[datetime, str]]:
    """Successful status writes in ``namespace``: when each landed, and by which replica."""
    return sorted(
        (_time(e["stageTimestamp"]), e.get("userAgent", "").removeprefix(AGENT))
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e["objectRef"].get("subresource") == "status"
        and 200 <= e.get("responseStatus", {}).get("code", 0) < 300
    )


def test_deleting_the_lease_under_write_load_never_makes_two_writers(
    audited: Cluster, tmp_path: Path
) -> None:
    """Status changes several times a second (the circuit annotation flips); `kubectl delete
    lease` meanwhile.
    The audit log shows the old leader's writes all before the next leader's, and nobody
    re-creating the Lease before it went unrenewed for its duration."""
    cluster = audited
    namespace = cluster.create_namespace("lease-gone")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"api-key": "sk-test"},
        },
        namespace,
    )
    with FakeProvider(
        "cloud", Flavor.OPENAI, [MODEL], host="127.0.0.2"
    ).running_in_thread() as fake:
        cluster.apply(provider(fake.base_url), namespace)
        a = OperatorProcess(cluster, namespace, tmp_path / "a.log", extra=LEASE).start()
        b = OperatorProcess(cluster, namespace, tmp_path / "b.log", extra=LEASE)
        flapping = threading.Event()

        def flap() -> None:  # each change of the annotation is a status write at once
            while not flapping.is_set():
                for value in ("signalbox.dev/circuit=force-open", "signalbox.dev/circuit-"):
                    cluster.kubectl("annotate", "llmp", "cloud", "-n", namespace, value)

        flapper = threading.Thread(target=flap, daemon=True)
        try:
            wait_for(lambda: state(cluster, namespace)[0] == "True", 30, "Ready")
            b.start()
            wait_for(b.metrics, 15, "the standby's metrics")
            assert lease_holder(cluster, namespace) == a.identity
            flapper.start()
            time.sleep(4)
            cluster.kubectl("delete", "lease", "signalbox-operator", "-n", namespace)
            deleted = datetime.now(UTC)
            wait_for(lambda: lease_holder(cluster, namespace) is not None, 30, "a new lease")
            time.sleep(4)
        finally:
            flapping.set()
            for op in (a, b):
                op.stop()
    events = audit_log(cluster)
    writes = _writers_in_order(events, namespace)
    after = [w for t, w in writes if t >= deleted]
    turns = [w for i, w in enumerate(after) if i == 0 or after[i - 1] != w]
    assert len(turns) <= 2, f"the writers interleaved: {turns}"
    assert len([t for t, _ in writes if t >= deleted - timedelta(seconds=4)]) > 4, "no load"
    created = [
        _time(e["stageTimestamp"])
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e["objectRef"].get("resource") == "leases"
        and e.get("verb") == "create"
        and 200 <= e.get("responseStatus", {}).get("code", 0) < 300
    ]
    again = [t for t in created if t > deleted]
    assert again, "the Lease was re-created"
    # The standby last saw it renewed at most a retry period (1 s) before the delete.
    assert (again[0] - deleted).total_seconds() >= 6 - 1 - 0.5
