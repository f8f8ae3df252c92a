"""The CRDs on the real API server: every invalid manifest is rejected with a message that names
the field, and every valid one (the samples included) is accepted."""

from __future__ import annotations

import pytest

from tests.support.cluster import REPO, Cluster
from tests.support.invalid_manifests import INVALID, Case, policy, provider


def test_valid_bases_are_accepted(cluster: Cluster, namespace: str) -> None:
    # Each invalid case differs from one of these by the one change it names.
    cluster.apply(provider(), namespace)
    cluster.apply(policy(), namespace)
    got = cluster.get("llmprovider", "p", namespace)
    assert got["spec"]["healthCheck"]["interval"] == "30s", "schema defaults were applied"
    assert got["spec"]["circuitBreaker"]["failureThreshold"] == 3
    assert cluster.get("routingpolicy", "rp", namespace)["spec"]["strategy"] == "Priority"


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_invalid_manifest_is_rejected(cluster: Cluster, namespace: str, case: Case) -> None:
    import yaml

    proc = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(case.manifest), check=False
    )
    assert proc.returncode != 0, f"accepted an invalid manifest: {case.manifest}"
    assert "is invalid" in proc.stderr
    # The same field that signalbox_api.admission names
    # (tests/unit/signalbox_api/test_admission.py).
    assert f"{case.field or '<nil>'}: " in proc.stderr
    for text in case.expected:
        assert text in proc.stderr


def test_type_is_immutable(cluster: Cluster, namespace: str) -> None:
    cluster.apply(provider(), namespace)
    changed = provider(type="OpenAICompatible")
    import yaml

    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(changed), check=False
    )
    assert proc.returncode != 0
    assert "spec.type is immutable" in proc.stderr
    assert cluster.get("llmprovider", "p", namespace)["spec"]["type"] == "OpenAI"


def test_samples_apply_cleanly_and_show_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "crds" / "samples"))
    llm = cluster.kubectl("get", "llm", "-n", namespace).stdout
    for name in (
        "openai",
        "anthropic",
        "ollama-local",
        "vllm-llama",
        "openrouter",
        "chat-default",
        "cheap-cloud",
    ):
        assert name in llm
    providers = cluster.kubectl("get", "llmp", "-n", namespace).stdout.splitlines()
    assert providers[0].split() == [
        "NAME", "TYPE", "READY", "CIRCUIT", "PRIORITY", "REASON", "PROBED", "AGE",
    ]  # fmt: skip
    assert len(providers) == 6
    wide = cluster.kubectl("get", "llmp", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert wide.split()[-5:] == ["ENDPOINT", "LATENCY", "UPTIME-1H", "MODELS", "DISCOVERED"]
    policies = cluster.kubectl("get", "llmrp", "-n", namespace).stdout.splitlines()
    assert policies[0].split() == ["NAME", "STRATEGY", "ACTIVE", "ELIGIBLE", "READY", "AGE"]


def test_the_in_cluster_example_is_valid_as_is(cluster: Cluster, namespace: str) -> None:
    """Every object of crds/samples/in-cluster/ passes the API server's validation (the
    end-to-end quick start runs it on a node)."""
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", str(REPO / "crds/samples/in-cluster")
    ).stdout
    for kind, name in (("deployment.apps", "vllm"), ("llmprovider.signalbox.dev", "cloud")):
        assert f"{kind}/{name} created (server dry run)" in out, out
    assert "routingpolicy.signalbox.dev/chat-default created (server dry run)" in out


def test_printer_columns_read_conditions_by_type(cluster: Cluster, namespace: str) -> None:
    cluster.apply(provider(), namespace)
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Healthy",
                    "status": "False",
                    "reason": "ProbeFailed",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CircuitOpen",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
            ],
            "circuit": {"state": "Open"},
            "modelSummary": "gpt-4o-mini",
        }
    }
    import json

    cluster.kubectl(
        "patch",
        "llmp",
        "p",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    row = cluster.kubectl(
        "get", "llmp", "p", "-n", namespace, "-o", "wide", "--no-headers"
    ).stdout.split()
    assert row[:6] == ["p", "OpenAI", "False", "Open", "100", "CircuitOpen"]
    assert row[-1] == "gpt-4o-mini"


def test_explain_teaches_the_fields(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "llmprovider.spec.healthCheck").stdout
    assert "ListModels" in out
    assert "interval" in out
    assert "Consecutive failures" in out
    policy_out = cluster.kubectl("explain", "routingpolicy.spec.failover").stdout
    assert "retryOn" in policy_out
