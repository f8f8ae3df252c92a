"""Two operator replicas against a real API server that is paused, stopped and restarted:
one leader at a time, no status write by a replica not holding the Lease (checked in the API
server's own audit log), and a leader again soon after every outage."""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider, Flavor
from signalbox_operator.leadership import shards
from tests.controlplane.conftest import CLUSTER_NAME
from tests.support import cluster as cluster_support
from tests.support import router as router_support
from tests.support.cluster import Cluster
from tests.support.operator import (
    OperatorProcess,
    apiserver,
    audit_log,
    condition,
    lease_holder,
    shard_holders,
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


def writes_without_the_lease(
    events: list[dict[str, Any]],
    namespace: str,
    lease_of: Callable[[str], str] = lambda _name: "signalbox-operator",
) -> list[str]:
    """Status patches and Events by an operator that did not hold the Lease of the object
    (``lease_of`` its name) for the whole time from the request's arrival to its response, from
    the API server's audit events. A Lease write names the holder from then on."""

    def ok(e: dict[str, Any]) -> bool:
        code: int = e.get("responseStatus", {}).get("code", 0)
        return 200 <= code < 300

    mine = [e for e in events if e.get("objectRef", {}).get("namespace") == namespace and ok(e)]
    leases: dict[str, list[tuple[datetime, str | None]]] = {}
    for e in mine:
        if e["objectRef"].get("resource") == "leases" and e.get("requestObject"):
            holder = e["requestObject"].get("spec", {}).get("holderIdentity")
            leases.setdefault(e["objectRef"]["name"], []).append(
                (_time(e["stageTimestamp"]), holder)
            )
    for history in leases.values():
        history.sort(key=lambda x: x[0])
    bad = []
    for e in mine:
        ref = e["objectRef"]
        is_status = ref.get("resource") in ("llmproviders", "routingpolicies") and (
            ref.get("subresource") == "status"
        )
        if not (is_status or ref.get("resource") == "events"):
            continue
        name = ref.get("name") or ""
        if ref.get("resource") == "events":  # named "<object>.<suffix>"; a create says whose
            involved = (e.get("requestObject") or {}).get("involvedObject") or {}
            name = involved.get("name") or name.rsplit(".", 1)[0]
        history = leases.get(lease_of(name), [])
        times = [t for t, _ in history]
        writer = e.get("userAgent", "").removeprefix(AGENT)
        start, end = _time(e["requestReceivedTimestamp"]), _time(e["stageTimestamp"])
        first = bisect.bisect_right(times, start) - 1
        last = bisect.bisect_right(times, end)
        holders = {h for _, h in history[max(first, 0) : last]} if first >= 0 else {None}
        if holders != {writer}:
            what = f"{ref.get('resource')} {name}"
            bad.append(f"{e['verb']} {what} by {writer} at {end}: held {holders}")
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


SHARDS = 6
SHARD_REPLICAS = ("shard-a", "shard-b", "shard-c")


def expected_holders(members: list[str]) -> dict[int, str | None]:
    return dict(shards.assignment(SHARDS, members))


def test_three_replicas_share_the_providers_by_shard_and_hand_over(
    audited: Cluster, tmp_path: Path
) -> None:
    """Three replicas, six shards, 48 providers and two policies: each replica probes the
    providers of the shards rendezvous hashing gives it; a paused replica's shards pass to the
    others within the lease duration and come back when it wakes; a killed one's pass on; one
    stopped gives its shards up at once. Throughout, the audit log shows no status write or
    Event by a replica that did not hold the object's shard."""
    cluster = audited
    namespace = cluster.create_namespace("shards")
    names = [f"p-{i}" for i in range(48)]
    with FakeProvider(
        "cloud", Flavor.OPENAI, [MODEL], host="127.0.0.2"
    ).running_in_thread() as fake:
        items = [
            router_support.provider(
                name,
                "OpenAICompatible",
                fake.base_url,
                models=[MODEL],
                healthCheck={"interval": "2s", "timeout": "1s"},
            )
            for name in names
        ]
        items += [router_support.policy(f"pol-{i}", [MODEL], names[i::2]) for i in range(2)]
        cluster.apply({"apiVersion": "v1", "kind": "List", "items": items}, namespace)
        ops = {
            who: OperatorProcess(
                cluster,
                namespace,
                tmp_path / f"{who}.log",
                identity=who,
                extra=[*LEASE, "--shards", str(SHARDS)],
            ).start()
            for who in SHARD_REPLICAS
        }
        a, b, c = (ops[w] for w in SHARD_REPLICAS)
        everyone = sorted(SHARD_REPLICAS)

        def ready() -> int:
            listed = json.loads(
                cluster.kubectl("get", "llmp", "-n", namespace, "-o", "json").stdout
            )
            return sum(
                (condition(o, "Ready") or {}).get("status") == "True" for o in listed["items"]
            )

        def fault_seen_and_healed(by: str) -> None:
            """Every provider is probed, and its verdict written, by whoever holds it now."""
            fake.set_faults(status=503)
            wait_for(lambda: ready() == 0 or None, 20, f"every provider Ready=False ({by})")
            fake.clear_faults()
            wait_for(lambda: ready() == len(names) or None, 20, f"every provider Ready ({by})")

        def probing(who: OperatorProcess) -> int:
            return int(who.metric("signalbox_probers") or 0)

        def share(who: str, members: list[str]) -> int:
            mine = {i for i, h in expected_holders(members).items() if h == who}
            return sum(1 for n in names if shards.shard_of(namespace, n, SHARDS) in mine)

        try:
            wait_for(
                lambda: (
                    shard_holders(cluster, namespace, SHARDS) == expected_holders(everyone) or None
                ),
                40,
                "each shard held by its replica",
            )
            wait_for(lambda: ready() == len(names) or None, 60, "every provider Ready")
            for who in SHARD_REPLICAS:
                assert probing(ops[who]) == share(who, everyone), who
            for i in range(2):
                pol = cluster.get("llmrp", f"pol-{i}", namespace)
                listed = pol.get("status", {}).get("providers", [])
                assert len(listed) == 24, pol
                assert all(p.get("eligible") for p in listed), pol

            # A pauses past its lease: B and C take its shards, and probe its providers.
            a.pause()
            paused = time.monotonic()
            wait_for(
                lambda: (
                    shard_holders(cluster, namespace, SHARDS)
                    == expected_holders(["shard-b", "shard-c"])
                    or None
                ),
                20,
                "A's shards held by B and C",
            )
            handed = time.monotonic() - paused
            fault_seen_and_healed("B and C")
            # A wakes: it must write nothing for the shards it lost, then gets its own back.
            a.resume()
            wait_for(
                lambda: (
                    shard_holders(cluster, namespace, SHARDS) == expected_holders(everyone) or None
                ),
                30,
                "A's shards back with A",
            )
            wait_for(lambda: probing(a) == share("shard-a", everyone) or None, 10, "A probing")

            # B is killed: its shards pass on within the lease duration and a retry or two.
            b.stop(kill=True)
            killed = time.monotonic()
            wait_for(
                lambda: (
                    shard_holders(cluster, namespace, SHARDS)
                    == expected_holders(["shard-a", "shard-c"])
                    or None
                ),
                20,
                "B's shards with A and C",
            )
            taken = time.monotonic() - killed
            # C stops: it gives its shards up, and A takes them at once.
            c.stop()
            stopped = time.monotonic()
            wait_for(
                lambda: (
                    set(shard_holders(cluster, namespace, SHARDS).values()) == {"shard-a"} or None
                ),
                10,
                "every shard with A",
            )
            given = time.monotonic() - stopped
            wait_for(lambda: probing(a) == len(names) or None, 10, "A probing everything")
            fault_seen_and_healed("A alone")
        finally:
            for op in ops.values():
                if op.alive():
                    op.resume()
                op.stop()
    print(
        f"paused: shards held by others after {handed:.1f}s; killed: {taken:.1f}s; "
        f"stopped: {given:.1f}s (lease 6s, retry 1s)"
    )
    assert handed < 6 + 3, "a hand-over took longer than the lease and 3 retries"
    assert taken < 6 + 3, "a hand-over took longer than the lease and 3 retries"
    assert given < 3
    events = audit_log(cluster)

    def lease_of(name: str) -> str:
        shard = shards.shard_of(namespace, name, SHARDS)
        return shards.shard_lease("signalbox-operator", shard, SHARDS)

    assert writes_without_the_lease(events, namespace, lease_of) == []
    logs = "".join(op.log() for op in ops.values())
    assert "signalbox_operator/" not in logs, "a traceback through the operator's code"
