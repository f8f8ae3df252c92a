"""The router in Kubernetes mode, with the operator writing status on a real API server."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import cluster as clusters
from tests.support import router as router_support
from tests.support import services
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, free_port, wait_for
from tests.support.router_process import KubeRouter

MODEL = "gpt-4o-mini"


def provider(name: str, url: str, priority: int) -> dict[str, Any]:
    return router_support.provider(
        name,
        "OpenAICompatible",
        url,
        models=[{"name": MODEL, "capabilities": ["chat", "streaming"]}],
        priority=priority,
        healthCheck={"interval": "1s", "timeout": "800ms", "unhealthyThreshold": 1},
        circuitBreaker={"failureThreshold": 1, "openDuration": "30s"},
    )


POLICY = {
    "apiVersion": "signalbox.dev/v1alpha1",
    "kind": "RoutingPolicy",
    "metadata": {"name": "chat"},
    "spec": {"models": ["chat-default"], "providers": [{"name": "primary"}, {"name": "backup"}]},
}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    a = FakeProvider("primary", Flavor.OPENAI, [MODEL], host="127.0.0.7")
    b = FakeProvider("backup", Flavor.OPENAI, [MODEL], host="127.0.0.8")
    with a.running_in_thread(), b.running_in_thread():
        yield a, b


def _ask(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="chat-default", messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["x-signalbox-provider"]


def _ready(cluster: Cluster, namespace: str, name: str) -> bool:
    c = condition(cluster.get("llmp", name, namespace), "Ready")
    return c is not None and c["status"] == "True"


@contextlib.contextmanager
def operator_and_router(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[KubeRouter]:
    """The operator and a router in Kubernetes mode on ``namespace``, stopped at the end."""
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    router = KubeRouter(cluster, namespace, tmp_path / "router.log").start()
    try:
        yield router
    finally:
        router.stop()
        op.stop()


def test_not_ready_provider_gets_no_traffic_within_two_seconds(
    cluster: Cluster, namespace: str, fakes: tuple[FakeProvider, FakeProvider], tmp_path: Path
) -> None:
    primary, backup = fakes
    cluster.apply(provider("primary", primary.base_url, 10), namespace)
    cluster.apply(provider("backup", backup.base_url, 20), namespace)
    cluster.apply(POLICY, namespace)
    with operator_and_router(cluster, namespace, tmp_path) as router:
        wait_for(
            lambda: _ready(cluster, namespace, "primary") and _ready(cluster, namespace, "backup"),
            15,
            "both Ready",
        )
        client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
        wait_for(lambda: _ask(client) == "primary", 10, "traffic on the primary")
        # The operator alone marks the primary down: requests to it still succeed, so only the
        # status change can move traffic away.
        cluster.kubectl(
            "annotate", "llmp", "primary", "-n", namespace, "signalbox.dev/circuit=force-open"
        )
        wait_for(lambda: not _ready(cluster, namespace, "primary"), 10, "primary not Ready")
        marked = time.monotonic()
        wait_for(lambda: _ask(client) == "backup", 5, "traffic on the backup", every=0.05)
        assert time.monotonic() - marked < 2.0
        served_by_primary = len([s for s in primary.seen if s.path.endswith("/completions")])
        for _ in range(5):
            assert _ask(client) == "backup"
        assert len([s for s in primary.seen if s.path.endswith("/completions")]) == (
            served_by_primary
        )


def test_traffic_continues_when_the_api_server_stops(
    fakes: tuple[FakeProvider, FakeProvider], tmp_path: Path
) -> None:
    name = "pytest-outage"
    own = clusters.start(name)
    try:
        ns = own.create_namespace("outage")
        primary, backup = fakes
        own.apply(provider("primary", primary.base_url, 10), ns)
        own.apply(provider("backup", backup.base_url, 20), ns)
        own.apply(POLICY, ns)
        op = OperatorProcess(own, ns, tmp_path / "operator.log").start()
        router = KubeRouter(own, ns, tmp_path / "router.log").start()
        try:
            wait_for(lambda: _ready(own, ns, "primary"), 15, "primary Ready")
            client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
            wait_for(lambda: _ask(client) == "primary", 10, "traffic on the primary")
            op.stop()
            state = Path(own.kubeconfig).parent
            os.kill(int((state / "apiserver.pid").read_text()), signal.SIGKILL)
            wait_for(lambda: httpx.get(router.url + "/healthz").status_code == 200, 5, "router")
            time.sleep(1)
            for _ in range(10):
                assert _ask(client) == "primary"
            # The local breaker still fails over with no API server at all.
            primary.set_faults(status=503)
            assert _ask(client) == "backup"
        finally:
            router.stop()
            op.stop()
    finally:
        clusters.stop(name)


def _pods(cluster: Cluster, namespace: str, port: int, *hosts: str) -> None:
    """Service ``vllm`` with one ready endpoint per host, all on ``port``."""
    cluster.apply(services.service("vllm", port), namespace)
    cluster.apply(services.endpoint_slice("vllm", port, dict.fromkeys(hosts, True)), namespace)


def _in_cluster(priority: int) -> dict[str, Any]:
    spec = provider("vllm", "unused", priority)
    spec["spec"]["type"] = "VLLM"
    spec["spec"]["endpoint"] = {"service": {"name": "vllm", "port": 80, "path": "/v1"}}
    # The router's passive breaker is per provider: one pod's failure followed by another pod's
    # answer must not trip it.
    spec["spec"]["circuitBreaker"]["failureThreshold"] = 3
    return spec


def _chats(fake: FakeProvider) -> int:
    return len([s for s in fake.seen if s.path.endswith("/completions")])


def test_a_pod_that_fails_is_retried_on_another_pod_before_the_cloud(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """One of two ready pods refuses connections (terminating): its requests go to the other
    pod of the same provider, none to the paid cloud provider behind it."""
    port = free_port("127.0.0.23")
    live = FakeProvider("live", Flavor.VLLM, [MODEL], host="127.0.0.23", port=port)
    cloud = FakeProvider("cloud", Flavor.OPENAI, [MODEL], host="127.0.0.25")
    with live.running_in_thread(), cloud.running_in_thread():
        _pods(cluster, namespace, port, "127.0.0.23", "127.0.0.24")  # nothing on .24
        cluster.apply(_in_cluster(10), namespace)
        cluster.apply(provider("cloud", cloud.base_url, 20), namespace)
        policy = {
            **POLICY,
            "spec": {
                "models": ["chat-default"],
                "providers": [{"name": "vllm"}, {"name": "cloud"}],
            },
        }
        cluster.apply(policy, namespace)
        with operator_and_router(cluster, namespace, tmp_path) as router:
            wait_for(
                lambda: _ready(cluster, namespace, "vllm") and _ready(cluster, namespace, "cloud"),
                15,
                "both Ready",
            )
            client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
            wait_for(lambda: _ask(client) == "vllm", 10, "traffic on the pool")
            before = _chats(live)
            assert [_ask(client) for _ in range(10)] == ["vllm"] * 10
            assert _chats(live) - before == 10, "every request answered by the live pod"
            assert _chats(cloud) == 0, "none went to the cloud provider"


def test_vllm_pods_with_the_shortest_queue_get_the_traffic(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    port = free_port("127.0.0.21")
    busy = FakeProvider("busy", Flavor.VLLM, [MODEL], host="127.0.0.21", port=port)
    idle = FakeProvider("idle", Flavor.VLLM, [MODEL], host="127.0.0.22", port=port)
    with busy.running_in_thread(), idle.running_in_thread():
        busy.state.vllm.waiting = 25.0
        _pods(cluster, namespace, port, "127.0.0.21", "127.0.0.22")
        cluster.apply(_in_cluster(10), namespace)
        with operator_and_router(cluster, namespace, tmp_path) as router:
            wait_for(lambda: _ready(cluster, namespace, "vllm"), 15, "vllm Ready")
            client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
            time.sleep(4)  # two scrapes of both pods' /metrics
            before = _chats(busy)
            for _ in range(10):
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}]
                )
            served_busy = _chats(busy)
            served_idle = _chats(idle)
            assert served_busy == before, "the pod with the long queue got no new request"
            assert served_idle == 10
