"""Health over the last hour and day, and the LATENCY column with its unit, against the real
API server and a fake provider on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, events, wait_for

MODEL = "gpt-4o-mini"


def provider(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "OpenAICompatible",
            "endpoint": {"url": url},
            "models": [{"name": MODEL}],
            "healthCheck": {"interval": "1s", "timeout": "800ms", "unhealthyThreshold": 2},
            "circuitBreaker": {"failureThreshold": 50},
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider("h", Flavor.OPENAI, [MODEL], host="127.0.0.2").running_in_thread() as f:
        yield f


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()


def test_health_windows_and_latency_with_its_unit(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    cluster.apply(provider("h", fake.base_url), namespace)

    def ready() -> dict[str, Any] | None:
        obj = cluster.get("llmp", "h", namespace)
        return obj if (condition(obj, "Ready") or {}).get("status") == "True" else None

    health = wait_for(ready, 30, "Ready")["status"]["health"]
    assert re.fullmatch(r"\d+ms|\d+(\.\d)?s", health["latency"])
    assert health["lastHour"]["successRate"] == 1.0
    assert health["lastHour"]["probes"] >= 1
    assert health["lastDay"]["probes"] >= health["lastHour"]["probes"]
    header, row = cluster.kubectl("get", "llmp", "h", "-n", namespace, "-o", "wide").stdout.split(
        "\n"
    )[:2]
    columns = header.split()
    assert "LATENCY" in columns
    shown = row.split()[columns.index("LATENCY")]
    assert re.fullmatch(r"\d+ms|\d+(\.\d)?s", shown)

    fake.set_faults(status=503)  # failures flip Healthy, which is written at once

    def unhealthy() -> dict[str, Any] | None:
        obj = cluster.get("llmp", "h", namespace)
        return obj if (condition(obj, "Healthy") or {}).get("status") == "False" else None

    window = wait_for(unhealthy, 30, "Healthy=False")["status"]["health"]["lastHour"]
    assert 0 < window["successRate"] < 1
    assert 0 < window["uptime"] < 1
    assert window["probes"] >= 3


@pytest.fixture
def ollama() -> Iterator[FakeProvider]:
    models = ["llama3.2", "nomic-embed-text"]
    with FakeProvider("o", Flavor.OLLAMA, models, host="127.0.0.3").running_in_thread() as f:
        yield f


def test_discovered_capabilities_in_status_wide_output_and_policy_status(
    cluster: Cluster, namespace: str, ollama: FakeProvider, operator: OperatorProcess
) -> None:
    body = provider("o", ollama.url)
    body["spec"].update(type="Ollama", models=[{"name": "llama3.2"}], discoverModels=True)
    rp = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "agents"},
        "spec": {
            "models": ["agent"],
            "providers": [{"name": "o", "model": "llama3.2"}],
            "requirements": {"capabilities": ["tools"], "minContextWindow": 100000},
        },
    }
    cluster.apply(body, namespace)
    cluster.apply(rp, namespace)

    def described() -> dict[str, Any] | None:
        obj = cluster.get("llmp", "o", namespace)
        models = {m["name"]: m for m in obj.get("status", {}).get("models", [])}
        return models if models.get("llama3.2", {}).get("contextWindow") else None

    models = wait_for(described, 30, "discovered capabilities")
    assert models["llama3.2"]["contextWindow"] == 131072
    assert {"chat", "tools"} <= set(models["llama3.2"]["capabilities"])
    assert models["nomic-embed-text"]["capabilities"] == ["embeddings"]
    assert models["nomic-embed-text"]["declared"] is False
    header, row = cluster.kubectl("get", "llmp", "o", "-n", namespace, "-o", "wide").stdout.split(
        "\n"
    )[:2]
    assert "DISCOVERED" in header.split()
    assert "llama3.2=128k:chat,streaming,tools" in row

    def eligible() -> list[dict[str, Any]] | None:
        rows = cluster.get("llmrp", "agents", namespace).get("status", {}).get("providers", [])
        return rows if rows and rows[0].get("eligible") else None

    # Only discovery says llama3.2 has tools and 128k of context: the policy takes it.
    assert wait_for(eligible, 30, "provider eligible by discovered capabilities")[0]["name"] == "o"


def test_self_test_annotation_runs_the_suite_once(
    cluster: Cluster, namespace: str, fake: FakeProvider, operator: OperatorProcess
) -> None:
    body = provider("h", fake.base_url)
    body["spec"]["models"] = [
        {"name": MODEL, "capabilities": ["chat", "streaming", "tools"], "contextWindow": 65536}
    ]
    body["spec"]["type"] = "VLLM"
    body["metadata"]["annotations"] = {"signalbox.dev/self-test": "run"}
    with FakeProvider("v", Flavor.VLLM, [MODEL], host="127.0.0.4").running_in_thread() as vllm:
        body["spec"]["endpoint"] = {"url": vllm.base_url}
        cluster.apply(body, namespace)

        def ran() -> dict[str, Any] | None:
            status = cluster.get("llmp", "h", namespace).get("status", {})
            result: dict[str, Any] | None = status.get("selfTest")
            return result if result is not None and "passed" in result else None

        result = wait_for(ran, 60, "status.selfTest")
        checks = {c["name"]: c for c in result["checks"]}
        assert result["trigger"] == "run"
        for name in ("listModels", "chat", "streaming", "tools"):
            assert checks[name]["passed"] is True, checks[name]
        assert checks["streaming"]["ttftMs"] is not None
        assert "passed" not in checks["vision"]  # declared by no model: skipped
        # vLLM reports max_model_len 32768, less than the 65536 declared.
        assert checks["contextWindow"]["passed"] is False
        assert result["passed"] is False
        chats = [s for s in vllm.seen if s.path == "/v1/chat/completions"]

        def failed_event() -> list[dict[str, Any]] | None:
            found = [e for e in events(cluster, namespace, "h") if e["reason"] == "SelfTestFailed"]
            return found or None

        assert "contextWindow" in wait_for(failed_event, 20, "SelfTestFailed")[0]["message"]
        cluster.kubectl("annotate", "llmp", "h", "-n", namespace, "signalbox.dev/self-test-")

        def cleared() -> dict[str, Any] | None:
            status = cluster.get("llmp", "h", namespace).get("status", {})
            test = status.get("selfTest") or {}
            return test if "trigger" not in test and test else None

        assert wait_for(cleared, 30, "trigger cleared")["time"] == result["time"]
        # It ran once: no chat request went up after that run.
        assert [s for s in vllm.seen if s.path == "/v1/chat/completions"] == chats
