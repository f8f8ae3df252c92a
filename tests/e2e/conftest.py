"""End-to-end fixtures: one real node (hack/node.sh) per session, the chart installed on it.

These tests start containerd, a kubelet and pods, so they run only when asked:
``SIGNALBOX_E2E=1`` (``hack/test.sh e2e`` sets it). SIGNALBOX_E2E_CLUSTER names the node's
cluster (default "e2e"); SIGNALBOX_KEEP_CLUSTER=1 leaves it running after the session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import workloads
from tests.support import node as node_support
from tests.support.cluster import REPO, Cluster
from tests.support.jaeger import Jaeger, running_jaeger
from tests.support.operator import wait_for

CLUSTER_NAME = os.environ.get("SIGNALBOX_E2E_CLUSTER", "e2e")
ENABLED = os.environ.get("SIGNALBOX_E2E") == "1"
NAMESPACE = "signalbox-e2e"
RELEASE = "signalbox"
CHART = REPO / "charts" / "signalbox"
# Probes faster than the chart's defaults, so that a failing probe shows within seconds; still
# three misses in a row (6 s) before a restart, and 15 s to start, so that a busy machine does
# not restart a pod.
FAST_PROBES = [
    f"{component}.{probe}.{field}={value}"
    for component in ("operator", "router")
    for probe, fields in {
        "livenessProbe": {"initialDelaySeconds": 15, "periodSeconds": 2, "failureThreshold": 3,
                          "timeoutSeconds": 2, "terminationGracePeriodSeconds": 2},
        "readinessProbe": {"periodSeconds": 2, "failureThreshold": 2, "timeoutSeconds": 2},
    }.items()
    for field, value in fields.items()
]  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs a real node (hack/node.sh): root, containerd")


# Modules that run after every other, in this order: the release is uninstalled, then the
# quick start installs the chart as on a fresh cluster.
LAST = ("test_uninstall.py", "test_quick_start.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    items.sort(key=lambda i: LAST.index(i.path.name) if i.path.name in LAST else -1)
    skip = pytest.mark.skip(reason="end-to-end tests on a real node run with SIGNALBOX_E2E=1")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.timeout(1500))  # the first test also starts the node
            if not ENABLED:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def node() -> Iterator[Cluster]:
    try:
        started = node_support.start(CLUSTER_NAME)
    except node_support.NodeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield started
    if not os.environ.get("SIGNALBOX_KEEP_CLUSTER"):
        node_support.stop(CLUSTER_NAME)


@pytest.fixture(scope="session")
def jaeger(node: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """A Jaeger on the node's address, where its pods send spans (the chart's tracing values)."""
    folder = tmp_path_factory.mktemp("jaeger")
    with running_jaeger(
        folder, host=node_support.NODE_IP, netns=node_support.netns(CLUSTER_NAME)
    ) as j:
        yield j


@dataclass(frozen=True)
class Release:
    cluster: Cluster
    namespace: str
    name: str
    api_key: str
    jaeger: Jaeger

    def values(self, *extra: str) -> list[str]:
        sets = [
            f"image.registry={node_support.IMAGE_REGISTRY}",
            f"image.tag={node_support.IMAGE_TAG}",
            "image.pullPolicy=Never",
            "operator.replicas=2",
            "router.replicas=2",
            "router.clientAuth.existingSecret=e2e-client-keys",
            "sidecar.serviceAccount.create=true",
            "tracing.enabled=true",
            f"tracing.endpoint={self.jaeger.endpoint}",
            *FAST_PROBES,
            *extra,
        ]
        return [arg for s in sets for arg in ("--set", s)]

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, check=check, timeout=180).stdout


def _ready(release: Release, name: str) -> bool:
    out = release.kubectl(
        "get", "llmp", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )
    return out == "True"


@pytest.fixture(scope="session")
def release(node: Cluster, jaeger: Jaeger) -> Release:
    """The chart installed with its own RBAC, the in-cluster backends, providers and a policy,
    tracing to ``jaeger``."""
    rel = Release(node, NAMESPACE, RELEASE, f"sk-e2e-{secrets.token_hex(12)}", jaeger)
    # a fresh namespace each session (a kept node may hold the last session's)
    node.kubectl(
        "delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=180s", timeout=200
    )
    node.kubectl("create", "namespace", NAMESPACE)
    rel.kubectl(
        "create", "secret", "generic", "e2e-client-keys", f"--from-literal=api-keys={rel.api_key}"
    )
    # --wait on a fresh install: routers are Ready before any provider is (the CRDs that the
    # providers need come with the chart).
    node_support.helm(
        node, "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--wait",
        "--timeout=5m", *rel.values(), timeout=400,
    )  # fmt: skip
    for doc in workloads.backends(f"sk-cloud-{secrets.token_hex(12)}"):
        node.apply(doc, NAMESPACE)
    for doc in workloads.providers(NAMESPACE):
        node.apply(doc, NAMESPACE)
    rel.kubectl(
        "rollout", "status", "deploy/vllm", "deploy/ollama", "deploy/cloud",
        f"deploy/{RELEASE}-operator", f"deploy/{RELEASE}-router", "--timeout=300s",
    )  # fmt: skip
    for name in ("vllm", "ollama", "cloud"):
        wait_for(lambda n=name: _ready(rel, n), 90, f"LLMProvider {name} Ready")  # type: ignore[misc]
    return rel
