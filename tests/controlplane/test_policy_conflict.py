"""Two RoutingPolicies claiming the same model names, against the real API server: the loser's
status names the winner, and the router, reading the same objects, sends the names there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signalbox_router.routing import selection
from signalbox_router.sources import cluster_snapshot
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, wait_for


def policy(name: str, *models: str) -> dict[str, Any]:
    return {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": name},
        "spec": {"models": list(models), "providers": [{"name": "p"}]},
    }


PROVIDER = {
    "apiVersion": "signalbox.dev/v1alpha1",
    "kind": "LLMProvider",
    "metadata": {"name": "p"},
    "spec": {
        "type": "OpenAICompatible",
        "endpoint": {"url": "http://127.0.0.1:9/v1"},
        "models": [{"name": "gpt-4o-mini"}, {"name": "o1"}],
        "healthCheck": {"interval": "5s", "timeout": "500ms"},
    },
}


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()


def accepted(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = cluster.get("llmrp", name, namespace)
    if obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return condition(obj, "Accepted")


def wait_accepted(
    cluster: Cluster, namespace: str, name: str, status: str, reason: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = accepted(cluster, namespace, name)
        return c if c and (c["status"], c["reason"]) == (status, reason) else None

    return wait_for(check, 20, f"llmrp/{name} Accepted={status} {reason}")


def router_policy(cluster: Cluster, namespace: str, model: str) -> str | None:
    """The policy the router's watch code resolves ``model`` to, from the stored objects."""
    objects = {n: cluster.get("llmrp", n, namespace) for n in ("zz-old", "aa-new")}
    store = cluster_snapshot.Store(kinds={"routingpolicies": objects})
    snap = cluster_snapshot.build(store, namespace).snapshot
    found = selection.find_policy(model, snap.policies)
    return found.name if found else None


def test_the_loser_of_a_model_conflict_names_the_winner(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(PROVIDER, namespace)
    # The older policy sorts last by name, so only its age can make it win.
    cluster.apply(policy("zz-old", "chat-default", "gpt-*"), namespace)
    wait_accepted(cluster, namespace, "zz-old", "True", "Valid")
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    cluster.apply(policy("aa-new", "chat-default", "gpt-4o*", "own-name"), namespace)

    lost = wait_accepted(cluster, namespace, "aa-new", "True", "ModelConflict")
    assert "chat-default (RoutingPolicy zz-old)" in lost["message"]
    assert "gpt-4o-mini (RoutingPolicy zz-old)" in lost["message"]
    assert "own-name" not in lost["message"]
    assert "o1" not in lost["message"]
    assert accepted(cluster, namespace, "zz-old") == wait_accepted(
        cluster, namespace, "zz-old", "True", "Valid"
    )
    # The router, on the same objects, agrees with what the status says.
    assert router_policy(cluster, namespace, "chat-default") == "zz-old"
    assert router_policy(cluster, namespace, "gpt-4o-mini") == "zz-old"
    assert router_policy(cluster, namespace, "own-name") == "aa-new"

    # Left with nothing of its own, the loser is neither accepted nor ready.
    cluster.apply(policy("aa-new", "chat-default"), namespace)
    wait_accepted(cluster, namespace, "aa-new", "False", "ModelConflict")
    ready = condition(cluster.get("llmrp", "aa-new", namespace), "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ModelConflict")

    # Once the winner is gone, the names are its own again.
    cluster.kubectl("delete", "llmrp", "zz-old", "-n", namespace)
    wait_accepted(cluster, namespace, "aa-new", "True", "Valid")
