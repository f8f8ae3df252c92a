"""The chart's probes on a real node, after the traffic and outage tests of test_node_chart.py:
no pod was restarted by them, readiness follows what the router can serve, and a process that
stops answering (SIGSTOP from the host, found through the node's containerd) is restarted by
its liveness probe and comes back Ready.

The release runs with faster probe timings (conftest.FAST_PROBES), set through chart values.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from typing import Any

import httpx

from tests.e2e.conftest import Release
from tests.e2e.workloads import CHAT
from tests.support.node import container_pid, port_forward
from tests.support.operator import lease_holder, wait_for

PROVIDERS = ("vllm", "ollama", "cloud")


def chart_pods(release: Release, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component={component}"
    out = release.kubectl("get", "pods", "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return sorted(
        (p for p in items if not p["metadata"].get("deletionTimestamp")),
        key=lambda p: str(p["metadata"]["name"]),
    )


def pod(release: Release, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(release.kubectl("get", "pod", name, "-o", "json"))
    return found


def is_ready(p: dict[str, Any]) -> bool:
    conditions = p.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def container(p: dict[str, Any]) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = p.get("status", {}).get("containerStatuses", [])
    assert len(statuses) == 1, statuses
    return statuses[0]


def all_ready(release: Release) -> bool:
    found = chart_pods(release, "operator") + chart_pods(release, "router")
    return len(found) == 4 and all(is_ready(p) for p in found)


def test_chart_pods_are_ready_and_no_probe_restarted_them(release: Release) -> None:
    """Through a rollout, a leader hand-over and an API server outage, the probes held: every
    operator and router container is Ready and was never restarted."""
    wait_for(lambda: all_ready(release), 60, "every chart pod Ready")
    restarted = {
        p["metadata"]["name"]: container(p)["restartCount"]
        for component in ("operator", "router")
        for p in chart_pods(release, component)
        if container(p)["restartCount"]
    }
    assert restarted == {}


def _suspend(release: Release, suspended: bool) -> None:
    patch = json.dumps({"spec": {"suspend": suspended}})
    for name in PROVIDERS:
        release.kubectl("patch", "llmp", name, "--type=merge", "-p", patch)


def test_a_router_with_no_eligible_provider_stays_ready_and_says_so(release: Release) -> None:
    """Every provider suspended: the routers stay in their Service and answer a model request
    with an OpenAI-shaped 503 that names the model, and /readyz says why (a fresh install,
    before any provider is Ready, is the same case: `helm install --wait` does not hang)."""
    routers = [p["metadata"]["name"] for p in chart_pods(release, "router")]
    before = {n: container(pod(release, n))["restartCount"] for n in routers}
    try:
        _suspend(release, True)
        with port_forward(release.cluster, release.namespace, f"pod/{routers[0]}", 8080) as port:
            url = f"http://127.0.0.1:{port}"
            wait_for(
                lambda: httpx.get(url + "/readyz", timeout=10).json()["eligible_providers"] == 0,
                60,
                "no eligible provider",
            )
            resp = httpx.get(url + "/readyz", timeout=10)
            assert resp.status_code == 200
            assert "no eligible provider" in resp.json()["note"]
            answer = httpx.post(
                url + "/v1/chat/completions",
                json={"model": CHAT, "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {release.api_key}"},
                timeout=30,
            )
        assert answer.status_code == 503
        assert CHAT in answer.json()["error"]["message"]
        assert all(is_ready(pod(release, n)) for n in routers), "the routers stayed Ready"
    finally:
        _suspend(release, False)
    after = {n: container(pod(release, n))["restartCount"] for n in routers}
    assert after == before, "nothing restarted"


def _liveness_restarts(release: Release, name: str) -> None:
    """SIGSTOP the pod's process from the host; the kubelet's liveness probe restarts the
    container; the pod is Ready again with a new process."""
    status = container(pod(release, name))
    count, old_id = status["restartCount"], status["containerID"]
    pid = container_pid(release.cluster.name, old_id)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: container(pod(release, name))["restartCount"] > count,
            90,
            f"{name} restarted by its liveness probe",
            every=1,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # were it not killed, it would answer again
    wait_for(lambda: is_ready(pod(release, name)), 60, f"{name} Ready again", every=1)
    assert container(pod(release, name))["containerID"] != old_id
    unhealthy = f"involvedObject.name={name},reason=Unhealthy"
    events = json.loads(
        release.kubectl("get", "events", "-o", "json", "--field-selector", unhealthy)
    )["items"]
    assert any("Liveness probe failed" in e.get("message", "") for e in events), events


def test_a_router_that_stops_answering_is_restarted_and_ready_again(release: Release) -> None:
    name = chart_pods(release, "router")[0]["metadata"]["name"]
    _liveness_restarts(release, name)


def test_an_operator_that_stops_answering_is_restarted_and_ready_again(release: Release) -> None:
    leader = wait_for(
        lambda: lease_holder(release.cluster, release.namespace), 60, "an operator leads"
    )
    operators = [p["metadata"]["name"] for p in chart_pods(release, "operator")]
    standby = next(n for n in operators if n != leader)
    _liveness_restarts(release, standby)
    assert lease_holder(release.cluster, release.namespace) == leader
