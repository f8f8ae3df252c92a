"""The operator's own /healthz and /readyz on two replicas against the real API server: the
standby is alive and ready as well as the leader, readiness follows the API server through an
outage while liveness holds, and the new leader says so after a hand-over."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, apiserver, free_port, lease_holder, wait_for

# Short leases keep the test short: a standby is not ready 6 s after its last good lease read.
LEASE = ["--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1"]


def probe(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


class Replica:
    def __init__(self, cluster: Cluster, namespace: str, log: Path) -> None:
        self.port = free_port()
        self.op = OperatorProcess(
            cluster, namespace, log, extra=[*LEASE, "--health-port", str(self.port)]
        )

    def answers(self) -> tuple[int, str, int, str, str]:
        """(/healthz code, its phase, /readyz code, its phase, its reason)"""
        live, lbody = probe(self.port, "/healthz")
        ready, rbody = probe(self.port, "/readyz")
        reason = str(rbody.get("reason"))
        return live, str(lbody.get("phase")), ready, str(rbody.get("phase")), reason

    def unanswered(self) -> tuple[int, str, int, str, str] | None:
        got = self.answers()
        return got if got[2] == 503 and "has not answered a lease read" in got[4] else None


@pytest.fixture
def replicas(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a = Replica(cluster, namespace, tmp_path / "a.log")
    b = Replica(cluster, namespace, tmp_path / "b.log")
    try:
        yield a, b
    finally:
        for r in (a, b):
            r.op.stop()


def test_standby_and_leader_answer_and_readiness_follows_the_api_server(
    cluster: Cluster, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    a.op.start()
    wait_for(lambda: lease_holder(cluster, namespace) == a.op.identity, 30, "A leads")
    b.op.start()
    wait_for(lambda: a.answers()[:4] == (200, "leading", 200, "leading"), 20, "A ready, leading")
    standby = (200, "standing by", 200, "standing by")
    wait_for(lambda: b.answers()[:4] == standby, 20, "B ready, standing by")
    # Standing by is a steady state: B stays alive and ready past several lease durations.
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        assert b.answers()[:4] == standby, b.op.log()[-2000:]
        time.sleep(1)
    assert b.op.alive()

    apiserver(cluster, "stop")
    try:
        # Nobody can read the lease: neither replica is ready, and both stay alive.
        # (the leader first stops its work: at most the renew deadline plus kopf's stop)
        for r in (a, b):
            got = wait_for(lambda r=r: r.unanswered(), 30, "not ready: no lease read")  # type: ignore[misc]
            assert got[0] == 200, got
        time.sleep(3)
        assert a.answers()[0] == 200
        assert b.answers()[0] == 200
    finally:
        apiserver(cluster, "start")

    def one_leader_one_standby() -> bool:
        phases = sorted((a.answers()[2:4], b.answers()[2:4]))
        return phases == [(200, "leading"), (200, "standing by")]

    wait_for(one_leader_one_standby, 40, "a leader and a ready standby after the outage")

    # The leader goes (SIGTERM releases the lease): the standby leads and says so.
    holder = lease_holder(cluster, namespace)
    leader, other = (a, b) if holder == a.op.identity else (b, a)
    leader.op.stop()
    assert probe(leader.port, "/healthz")[0] == 0, "the endpoint goes with the process"
    wait_for(lambda: other.answers()[:4] == (200, "leading", 200, "leading"), 20, "hand-over")
    assert other.op.alive()
