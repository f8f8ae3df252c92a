"""The operator's probes against real inference servers and the real API server: ListModels
(llama.cpp's ``/v1/models``, Ollama's ``/api/tags``) and ChatProbe (a one-token chat; through
Ollama's ``/api/chat``) mark them Ready, and their going away is noticed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import inference
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, wait_for
from tests.support.router import provider

CHECK = {"interval": "1s", "timeout": "1s", "unhealthyThreshold": 1, "healthyThreshold": 1}
Starter = Callable[[Path], AbstractContextManager[inference.Server]]
SERVERS: dict[str, tuple[Starter, str]] = {
    "llama": (inference.llama_cpp_server, "OpenAICompatible"),
    "ollama": (inference.ollama_server, "Ollama"),
}


def providers(via: str, ptype: str, server: inference.Server) -> list[dict[str, Any]]:
    url = server.base_url if ptype == "OpenAICompatible" else server.url
    chat_probe = {**CHECK, "mode": "ChatProbe", "probeModel": server.chat_model}
    breaker = {"failureThreshold": 100}  # keep probing: the test watches Ready, not the circuit
    return [
        provider(f"{via}-list", ptype, url, healthCheck=CHECK, circuitBreaker=breaker),
        provider(f"{via}-chat", ptype, url, healthCheck=chat_probe, circuitBreaker=breaker),
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


@pytest.mark.parametrize("via", list(SERVERS))
def test_probes_mark_a_real_server_ready_and_notice_it_going_away(
    cluster: Cluster, namespace: str, tmp_path: Path, via: str
) -> None:
    start, ptype = SERVERS[via]
    names = [f"{via}-list", f"{via}-chat"]
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    try:
        with start(tmp_path / via) as server:
            items = providers(via, ptype, server)
            manifest = {"apiVersion": "v1", "kind": "List", "items": items}
            cluster.apply(yaml.safe_dump(manifest), namespace)
            for name in names:
                until_ready_is(cluster, namespace, name, "True", f"(operator log: {op.log_path})")
            health = cluster.get("llmp", names[1], namespace)["status"]["health"]
            assert health["latencyMs"] >= 0
        # The server is stopped now: nothing listens on its port any more.
        for name in names:
            until_ready_is(cluster, namespace, name, "False", "once its server is gone")
            gone = cluster.get("llmp", name, namespace)["status"]["health"]["lastError"]
            assert gone["reason"] in {"ConnectionRefused", "ProbeFailed", "Timeout"}, gone
    finally:
        op.stop()
