"""The operator's probes against real inference servers and the real API server: ListModels
(llama.cpp's ``/v1/models``, Ollama's ``/api/tags``) and ChatProbe (a one-token chat, through
Ollama's ``/api/chat``) mark them Ready, and their going away is noticed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support import inference
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, wait_for
from tests.support.router import provider

CHECK = {"interval": "1s", "timeout": "2s", "unhealthyThreshold": 1, "healthyThreshold": 1}


def providers(llama: inference.Server, ollama: inference.Server) -> list[dict[str, Any]]:
    def chat_probe(model: str) -> dict[str, Any]:
        return {**CHECK, "mode": "ChatProbe", "probeModel": model}

    breaker = {"failureThreshold": 100}  # keep probing: the test watches Ready, not the circuit
    return [
        provider("llama-list", "OpenAICompatible", llama.base_url, healthCheck=CHECK),
        provider(
            "llama-chat",
            "OpenAICompatible",
            llama.base_url,
            healthCheck=chat_probe(llama.chat_model),
            circuitBreaker=breaker,
        ),
        provider("ollama-list", "Ollama", ollama.url, healthCheck=CHECK, circuitBreaker=breaker),
        provider(
            "ollama-chat",
            "Ollama",
            ollama.url,
            healthCheck=chat_probe(ollama.chat_model),
            circuitBreaker=breaker,
        ),
    ]


def ready(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The status of the provider's Ready condition (None before there is one)."""
    found = condition(cluster.get("llmp", name, namespace), "Ready") or {}
    status: str | None = found.get("status")
    return status


def until_ready_is(cluster: Cluster, namespace: str, name: str, status: str, why: str) -> None:
    def check() -> bool:
        return ready(cluster, namespace, name) == status

    wait_for(check, 60, f"{name} Ready={status} {why}")


def test_probes_mark_real_servers_ready_and_notice_them_going_away(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    names = ["llama-list", "llama-chat", "ollama-list", "ollama-chat"]
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    try:
        with (
            inference.llama_cpp_server(tmp_path / "llama") as llama,
            inference.ollama_server(tmp_path / "ollama") as ollama,
        ):
            items = providers(llama, ollama)
            cluster.apply(
                yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}), namespace
            )
            for name in names:
                until_ready_is(cluster, namespace, name, "True", f"(operator log: {op.log_path})")
            status = cluster.get("llmp", "ollama-list", namespace)["status"]
            assert status["health"]["latencyMs"] >= 0
        # Both servers are stopped now: nothing listens on their ports any more.
        for name in names:
            until_ready_is(cluster, namespace, name, "False", "once its server is gone")
            gone = cluster.get("llmp", name, namespace)["status"]["health"]["lastError"]
            assert gone["reason"] in {"ConnectionRefused", "ProbeFailed", "Timeout"}, gone
    finally:
        op.stop()
