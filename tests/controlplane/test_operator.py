"""The operator against the real API server and fake providers on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import services
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, events, free_port, wait_for

MODEL = "gpt-4o-mini"


def provider(name: str, url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "OpenAI",
            "endpoint": {"url": url},
            "auth": {"secretRef": {"name": "creds", "key": "api-key"}},
            "models": [{"name": MODEL, "capabilities": ["chat", "tools"]}],
            "healthCheck": {
                "interval": "1s",
                "timeout": "800ms",
                "unhealthyThreshold": 2,
                "healthyThreshold": 2,
            },
            "circuitBreaker": {
                "failureThreshold": 2,
                "openDuration": "2s",
                "maxOpenDuration": "4s",
            },
        },
    }
    body["spec"].update(spec)
    return body


def secret(value: str, name: str = "creds") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"api-key": value},
    }


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(
        "cloud", Flavor.OPENAI, [MODEL, "gpt-4o"], host="127.0.0.2"
    ).running_in_thread() as f:
        yield f


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()


def get(cluster: Cluster, namespace: str, name: str, kind: str = "llmp") -> dict[str, Any]:
    return cluster.get(kind, name, namespace)


def wait_condition(
    cluster: Cluster,
    namespace: str,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    *,
    timeout: float = 15,
    kind: str = "llmp",
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(cluster, namespace, name, kind)
        c = condition(obj, type_)
        if c and c["status"] == status and (reason is None or c["reason"] == reason):
            return obj
        return None

    return wait_for(check, timeout, f"{kind}/{name} {type_}={status} {reason or ''}")


def test_ready_within_one_interval_and_kubectl_wait(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "llmp/cloud", "--timeout=15s")
    obj = get(cluster, namespace, "cloud")
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["circuit"]["state"] == "Closed"
    assert status["endpoint"] == fake.base_url
    assert {m["name"] for m in status["models"]} == {MODEL, "gpt-4o"}
    assert [c["type"] for c in status["conditions"]] == [
        "Accepted",
        "ResolvedRefs",
        "Healthy",
        "Available",
        "Ready",
    ]
    assert all(s.authorized is None for s in fake.seen)  # no key required, but one was sent
    assert any("authorization" in s.header_names for s in fake.seen)
    row = cluster.kubectl("get", "llmp", "cloud", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:5] == ["OpenAI", "True", "Closed", "100"]
    assert "kopf" not in json.dumps(status)
    annotations = obj["metadata"].get("annotations", {})
    assert not obj["metadata"].get("finalizers")
    assert not [a for a in annotations if "kopf" in a]
    assert (
        operator.metric(
            f'signalbox_provider_up{{namespace="{namespace}",provider="cloud",type="OpenAI"}}'
        )
        == 1.0
    )


def test_failures_open_the_circuit_and_recovery_closes_it(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    fake.set_faults(status=503)
    obj = wait_condition(cluster, namespace, "cloud", "Healthy", "False", "ServerError")
    obj = wait_for(
        lambda: (
            (o := get(cluster, namespace, "cloud"))["status"]["circuit"]["state"] == "Open" and o
        ),
        10,
        "circuit Open",
    )
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["health"]["lastError"]["code"] == 503

    def reasons() -> set[str]:
        return {e["reason"] for e in events(cluster, namespace, "cloud")}

    wait_for(lambda: reasons() >= {"CircuitOpen", "NotReady"}, 10, "CircuitOpen, NotReady events")
    fake.clear_faults()
    wait_condition(cluster, namespace, "cloud", "Ready", "True", timeout=20)
    assert get(cluster, namespace, "cloud")["status"]["circuit"]["state"] == "Closed"
    assert {"CircuitHalfOpen", "CircuitClosed", "Ready"} <= reasons()
    said = operator.log().splitlines()  # every change is a log line too, a failure's a warning
    for reason, level in (("CircuitOpen", "WARNING"), ("NotReady", "WARNING"), ("Ready", "INFO")):
        lines = [line for line in said if f" {reason} {namespace}/cloud: " in line]
        assert lines, reason
        assert all(level in line for line in lines), lines
    assert any(f" CircuitClosed {namespace}/cloud: " in line for line in said)


def test_wrong_key_is_auth_failed_and_never_leaks(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    leaked = f"sk-wrong-{uuid.uuid4().hex}"
    fake.set_faults(api_key="sk-right")
    cluster.apply(secret(leaked), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    obj = wait_condition(cluster, namespace, "cloud", "Healthy", "False", "AuthFailed")
    assert obj["status"]["circuit"]["state"] == "Open", "AuthFailed opens at once"
    assert obj["status"]["health"]["lastError"]["reason"] == "AuthFailed"
    assert any(s.authorized is False for s in fake.seen)
    wait_for(lambda: events(cluster, namespace, "cloud"), 10, "events")
    everything = [
        json.dumps(get(cluster, namespace, "cloud")["status"]),
        json.dumps(events(cluster, namespace, "cloud")),
        operator.log(),
        operator.metrics(),
    ]
    for text in everything:
        assert leaked not in text
    # The right key heals it (after the open duration).
    cluster.apply(secret("sk-right"), namespace)
    wait_condition(cluster, namespace, "cloud", "Ready", "True", timeout=25)


def test_rate_limited_is_not_a_failure(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    fake.set_faults(status=429, retry_after=30)
    obj = wait_condition(cluster, namespace, "cloud", "Available", "False", "RateLimited")
    assert obj["status"]["circuit"]["state"] == "Closed"
    assert condition(obj, "Ready")["reason"] == "RateLimited"
    assert condition(obj, "Healthy")["status"] == "True"


def test_deleted_secret_is_reported(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    cluster.kubectl("delete", "secret", "creds", "-n", namespace)
    obj = wait_condition(cluster, namespace, "cloud", "ResolvedRefs", "False", "SecretNotFound")
    assert condition(obj, "Ready")["reason"] == "SecretNotFound"


def test_in_cluster_service_counts_ready_endpoints(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    port = free_port("127.0.0.3")
    a = FakeProvider("pod-a", Flavor.VLLM, ["llama"], host="127.0.0.3", port=port)
    b = FakeProvider("pod-b", Flavor.VLLM, ["llama"], host="127.0.0.4", port=port)
    with a.running_in_thread(), b.running_in_thread():
        cluster.apply(services.service("vllm", port), namespace)
        slice_ = services.endpoint_slice("vllm", port, {"127.0.0.3": True, "127.0.0.4": True})
        cluster.apply(slice_, namespace)
        spec = provider(
            "vllm",
            "unused",
            type="VLLM",
            endpoint={"service": {"name": "vllm", "port": 80, "path": "/v1"}},
            models=[{"name": "llama"}],
        )
        del spec["spec"]["auth"]
        cluster.apply(spec, namespace)
        obj = wait_condition(cluster, namespace, "vllm", "Ready", "True")
        assert obj["status"]["endpoints"] == {"ready": 2, "total": 2}
        assert obj["status"]["endpoint"] == f"http://127.0.0.3:{port}/v1"
        assert any(s.path == "/health" for s in a.seen), "vLLM readiness was probed"
        slice_["endpoints"][0]["conditions"]["ready"] = False
        cluster.apply(slice_, namespace)
        wait_for(
            lambda: (
                get(cluster, namespace, "vllm")["status"]["endpoints"] == {"ready": 1, "total": 2}
            ),
            10,
            "1/2 endpoints",
        )
        obj = get(cluster, namespace, "vllm")
        assert obj["status"]["endpoint"] == f"http://127.0.0.4:{port}/v1"
        slice_["endpoints"][1]["conditions"]["ready"] = False
        cluster.apply(slice_, namespace)
        wait_condition(cluster, namespace, "vllm", "ResolvedRefs", "False", "NoReadyEndpoints")


def test_status_follows_pods_and_secrets_in_seconds_not_intervals(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    """With a 30 s interval: a pool scaled up from zero, and a fixed key, show in seconds."""
    slow = {"interval": "30s", "timeout": "2s", "healthyThreshold": 2}
    port = free_port("127.0.0.5")
    with FakeProvider(
        "pod", Flavor.VLLM, ["llama"], host="127.0.0.5", port=port
    ).running_in_thread():
        cluster.apply(services.service("pool", port), namespace)
        cluster.apply(services.endpoint_slice("pool", port, {"127.0.0.5": False}), namespace)
        pool = provider(
            "pool",
            "unused",
            type="VLLM",
            endpoint={"service": {"name": "pool", "port": 80, "path": "/v1"}},
            models=[{"name": "llama"}],
            healthCheck=slow,
        )
        del pool["spec"]["auth"]
        cluster.apply(pool, namespace)
        wait_condition(cluster, namespace, "pool", "ResolvedRefs", "False", "NoReadyEndpoints")
        cluster.apply(services.endpoint_slice("pool", port, {"127.0.0.5": True}), namespace)
        scaled = time.monotonic()
        wait_condition(cluster, namespace, "pool", "Ready", "True", timeout=10)
        assert time.monotonic() - scaled < 5, "a ready pod is probed at once"

    fake.set_faults(api_key="sk-right")
    cluster.apply(secret("sk-wrong"), namespace)
    cluster.apply(provider("cloud", fake.base_url, healthCheck=slow), namespace)
    obj = wait_condition(cluster, namespace, "cloud", "Healthy", "False", "AuthFailed")
    assert obj["status"]["circuit"]["state"] == "Open"
    cluster.apply(secret("sk-right"), namespace)
    fixed = time.monotonic()
    obj = wait_condition(cluster, namespace, "cloud", "Ready", "True", timeout=10)
    assert time.monotonic() - fixed < 5, "a changed Secret is probed at once; the circuit closes"
    assert obj["status"]["circuit"]["state"] == "Closed"
    reasons = [e["reason"] for e in events(cluster, namespace, "cloud")]
    assert "CircuitHalfOpen" in reasons
    assert "CircuitClosed" in reasons


def test_invalid_spec_is_not_probed(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    bad = provider("cloud", fake.base_url, models=[{"name": "a", "aliases": ["b"]}, {"name": "b"}])
    cluster.apply(bad, namespace)
    obj = wait_condition(cluster, namespace, "cloud", "Accepted", "False", "InvalidSpec")
    assert "spec.models" in condition(obj, "Accepted")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert fake.seen == []


def test_force_open_annotation_and_deletion_stop_the_prober(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    cluster.kubectl(
        "annotate", "llmp", "cloud", "-n", namespace, "signalbox.dev/circuit=force-open"
    )
    obj = wait_condition(cluster, namespace, "cloud", "Available", "False", "CircuitOpen")
    assert obj["status"]["circuit"] == {
        **obj["status"]["circuit"],
        "state": "Open",
        "override": "force-open",
    }
    cluster.kubectl("annotate", "llmp", "cloud", "-n", namespace, "signalbox.dev/circuit-")
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    cluster.kubectl("delete", "llmp", "cloud", "-n", namespace)
    wait_for(lambda: operator.metric("signalbox_probers") == 0, 10, "prober stopped")
    count = len(fake.seen)
    import time

    time.sleep(2.5)
    assert len(fake.seen) == count, "a deleted provider is not probed"


def test_policy_follows_provider_health(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    with FakeProvider("backup", Flavor.OPENAI, [MODEL], host="127.0.0.5").running_in_thread() as b:
        cluster.apply(secret("sk-test"), namespace)
        cluster.apply(provider("primary", fake.base_url, priority=10), namespace)
        cluster.apply(provider("backup", b.base_url, priority=20), namespace)
        cluster.apply(
            {
                "apiVersion": "signalbox.dev/v1alpha1",
                "kind": "RoutingPolicy",
                "metadata": {"name": "chat"},
                "spec": {
                    "models": ["chat-default"],
                    "providers": [{"name": "primary"}, {"name": "backup"}],
                    "requirements": {"capabilities": ["tools"]},
                },
            },
            namespace,
        )
        obj = wait_condition(cluster, namespace, "chat", "Ready", "True", kind="llmrp")
        wait_for(
            lambda: get(cluster, namespace, "chat", "llmrp")["status"].get("eligible") == "2/2",
            10,
            "2/2 eligible",
        )
        obj = get(cluster, namespace, "chat", "llmrp")
        assert obj["status"]["activeProvider"] == "primary"
        assert condition(obj, "Degraded")["status"] == "False"
        fake.set_faults(status=503)
        wait_condition(cluster, namespace, "primary", "Ready", "False")
        obj = wait_condition(
            cluster, namespace, "chat", "Degraded", "True", timeout=2.5, kind="llmrp"
        )
        assert obj["status"]["activeProvider"] == "backup"
        assert obj["status"]["eligible"] == "1/2"
        primary = next(p for p in obj["status"]["providers"] if p["name"] == "primary")
        assert primary["eligible"] is False
        assert primary["reason"] in ("Unhealthy", "CircuitOpen")
        row = cluster.kubectl(
            "get", "llmrp", "chat", "-n", namespace, "--no-headers"
        ).stdout.split()
        assert row[1:5] == ["Priority", "backup", "1/2", "True"]

        def told() -> list[tuple[str, str]]:
            return [(e["type"], e["reason"]) for e in events(cluster, namespace, "chat")]

        # The move is an Event on the policy (and a warning in the operator's log).
        wait_for(lambda: ("Warning", "FailingOver") in told(), 10, "a FailingOver event")
        assert f" FailingOver {namespace}/chat: " in operator.log()


def test_unknown_first_then_quiet_status_and_spec_changes_apply_at_once(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    # The first probe takes 12 s: the window in which Unknown must show, even on a machine busy
    # enough to see the provider and its Secret seconds after the apply.
    fake.set_faults(latency=12.0)
    cluster.apply(secret("sk-test"), namespace)
    slow = provider("cloud", fake.base_url)
    slow["spec"]["healthCheck"] = {"interval": "15s", "timeout": "14s"}
    cluster.apply(slow, namespace)
    obj = wait_condition(cluster, namespace, "cloud", "Ready", "Unknown", "Pending", timeout=12)
    assert condition(obj, "Healthy")["status"] == "Unknown"
    row = cluster.kubectl("get", "llmp", "cloud", "-n", namespace, "--no-headers").stdout.split()
    assert row[2] == "Unknown"
    fake.clear_faults()
    wait_condition(cluster, namespace, "cloud", "Ready", "True", timeout=25)
    # Steady state: probes go on, but status is not rewritten for mere health figures.
    quiet = provider("cloud", fake.base_url)
    cluster.apply(quiet, namespace)
    wait_for(
        lambda: get(cluster, namespace, "cloud")["status"]["observedGeneration"] == 2,
        10,
        "generation 2 observed",
    )
    version = get(cluster, namespace, "cloud")["metadata"]["resourceVersion"]
    probes = len(fake.seen)
    writes = operator.metric('signalbox_status_writes_total{kind="llmproviders"}')
    import time

    time.sleep(4)
    assert len(fake.seen) >= probes + 3, "probing continues every second"
    assert get(cluster, namespace, "cloud")["metadata"]["resourceVersion"] == version
    assert operator.metric('signalbox_status_writes_total{kind="llmproviders"}') == writes
    # A spec change is picked up at once, not after the interval.
    with FakeProvider("other", Flavor.OPENAI, [MODEL], host="127.0.0.6").running_in_thread() as o:
        moved = provider("cloud", o.base_url)
        moved["spec"]["healthCheck"]["interval"] = "30s"
        cluster.apply(moved, namespace)
        wait_for(
            lambda: get(cluster, namespace, "cloud")["status"]["endpoint"] == o.base_url,
            5,
            "the new endpoint",
        )
        assert o.seen


def test_second_replica_takes_over_when_the_leader_dies(
    cluster: Cluster, namespace: str, fake: FakeProvider, tmp_path: Path
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    cluster.apply(provider("cloud", fake.base_url), namespace)
    first = OperatorProcess(cluster, namespace, tmp_path / "first.log").start()
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    second = OperatorProcess(cluster, namespace, tmp_path / "second.log").start()
    try:
        wait_for(second.metrics, 10, "the standby's metrics endpoint")
        lease = json.loads(
            cluster.kubectl(
                "get", "lease", "signalbox-operator", "-n", namespace, "-o", "json"
            ).stdout
        )
        assert lease["spec"]["holderIdentity"] == first.identity
        assert first.metric("signalbox_probers") == 1
        assert second.metric("signalbox_probers") is None or second.metric("signalbox_probers") == 0
        assert second.metric('signalbox_status_writes_total{kind="llmproviders"}') in (None, 0)
        first.stop(kill=True)
        import time

        killed = time.monotonic()
        wait_for(lambda: second.metric("signalbox_probers") == 1, 30, "the standby to take over")
        took = time.monotonic() - killed
        assert took < 30
        holder = json.loads(
            cluster.kubectl(
                "get", "lease", "signalbox-operator", "-n", namespace, "-o", "json"
            ).stdout
        )["spec"]
        assert holder["holderIdentity"] == second.identity
        fake.set_faults(status=500)
        wait_condition(cluster, namespace, "cloud", "Healthy", "False", "ServerError")
    finally:
        first.stop()
        second.stop()


def _subset(applied: Any, live: Any) -> bool:
    if isinstance(applied, dict):
        return isinstance(live, dict) and all(_subset(v, live.get(k)) for k, v in applied.items())
    return bool(applied == live)


def test_git_owned_fields_never_drift(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(secret("sk-test"), namespace)
    applied = provider("cloud", fake.base_url)
    applied["metadata"]["labels"] = {"team": "search", "signalbox.dev/tier": "cloud"}
    applied["metadata"]["annotations"] = {"owner": "platform@example.com"}
    cluster.apply(applied, namespace)
    cluster.apply(
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": "chat", "labels": {"team": "search"}},
            "spec": {"models": ["chat-default"], "providers": [{"name": "cloud"}]},
        },
        namespace,
    )
    wait_condition(cluster, namespace, "cloud", "Ready", "True")
    wait_condition(cluster, namespace, "chat", "Ready", "True", kind="llmrp")
    fake.set_faults(status=503)  # a transition or two, so status is written several times
    wait_condition(cluster, namespace, "cloud", "Ready", "False")
    live = get(cluster, namespace, "cloud")
    meta = live["metadata"]
    assert meta["generation"] == 1, "nothing but status was ever written"
    assert meta["labels"] == applied["metadata"]["labels"]
    owned = {
        k: v
        for k, v in meta.get("annotations", {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    assert owned == applied["metadata"]["annotations"]
    assert _subset(applied["spec"], live["spec"]), "every applied spec field is as applied"
    assert not meta.get("finalizers")
    policy = get(cluster, namespace, "chat", "llmrp")
    assert policy["metadata"]["generation"] == 1
    assert policy["metadata"]["labels"] == {"team": "search"}


def test_json_logs_are_one_object_a_line_kopfs_too(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    op = OperatorProcess(cluster, namespace, tmp_path / "json.log", extra=["--log-format", "json"])
    op.start()
    try:
        wait_for(lambda: "leading" in op.log() or "lease" in op.log(), 30, "a line about the lease")
    finally:
        op.stop()
    records = [json.loads(line) for line in op.log().splitlines() if line.strip()]
    assert records
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["logger"].startswith("signalbox_operator") for r in records)
