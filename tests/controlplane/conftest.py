"""Control-plane fixtures: one real kube-apiserver + etcd per test session (per pytest-xdist
worker: each worker its own, on free ports), a namespace per test; and the real inference
servers the operator's tests probe.

Set SIGNALBOX_KEEP_CLUSTER=1 to leave the control plane running after the session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.support import cluster as cluster_support
from tests.support.inference_fixtures import llama_cpp, ollama, server

__all__ = ["llama_cpp", "ollama", "server"]  # fixtures for the tests below
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
CLUSTER_NAME = os.environ.get("SIGNALBOX_TEST_CLUSTER", "pytest") + (
    f"-{_WORKER}" if _WORKER else ""
)


@pytest.fixture(scope="session")
def cluster() -> Iterator[cluster_support.Cluster]:
    try:
        started = cluster_support.start(CLUSTER_NAME)
    except cluster_support.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield started
    if not os.environ.get("SIGNALBOX_KEEP_CLUSTER"):
        cluster_support.stop(CLUSTER_NAME)


@pytest.fixture
def namespace(cluster: cluster_support.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-") or "test"
    name = cluster.create_namespace(prefix)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
