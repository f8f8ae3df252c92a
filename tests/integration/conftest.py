"""Integration fixtures: one real kube-apiserver + etcd per test session, a namespace per test.

Set SIGNALBOX_KEEP_CLUSTER=1 to leave the control plane running after the session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cluster as cluster_support

CLUSTER_NAME = os.environ.get("SIGNALBOX_TEST_CLUSTER", "pytest")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


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
