"""No loop outlives its object: nothing written for a deleted provider lands on a new one of
the same name, and deleting providers stops their probes, metric series and history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from signalbox_fake import FakeProvider, Flavor
from signalbox_operator.kube import Kube, Written
from signalbox_operator.metrics import Metrics
from tests.support import router as router_support
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, free_port, wait_for

COUNT = 200


def provider(name: str, url: str, interval: str = "1s") -> dict[str, Any]:
    return router_support.provider(
        name,
        "OpenAICompatible",
        url,
        models=["m"],
        healthCheck={"interval": interval, "timeout": "800ms"},
    )


def _objects(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "llmp", "-n", namespace, "-o", "json").stdout
    )["items"]
    return items


def _listing(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": docs}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider("live", Flavor.OPENAI, ["m"], host="127.0.0.9").running_in_thread() as f:
        f.set_faults(latency=0.05)  # probes in flight more often than not
        yield f


def test_a_write_for_a_deleted_object_never_lands_on_its_successor(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(provider("p", "http://127.0.0.1:1/v1"), namespace)
    old = cluster.get("llmp", "p", namespace)["metadata"]
    cluster.kubectl("delete", "llmp", "p", "-n", namespace)
    cluster.apply(provider("p", "http://127.0.0.1:2/v1"), namespace)
    new = cluster.get("llmp", "p", namespace)["metadata"]
    assert new["uid"] != old["uid"]

    async def write(uid: str) -> Written:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            str(cluster.kubeconfig), client_configuration=config
        )
        with kubernetes.client.ApiClient(config) as api:
            kube = Kube(api, Metrics(), "test")
            # The watch delivered the new object: its version is the newest the writer knows.
            kube.observe("llmproviders", namespace, "p", new["resourceVersion"])
            return await kube.write_status(
                "llmproviders", namespace, "p", lambda _: {"endpoint": f"written for {uid}"}, uid
            )

    assert asyncio.run(write(old["uid"])) == Written.GONE
    assert "status" not in cluster.get("llmp", "p", namespace), "nothing landed on the new one"
    assert asyncio.run(write(new["uid"])) == Written.WRITTEN
    assert cluster.get("llmp", "p", namespace)["status"]["endpoint"] == f"written for {new['uid']}"


@pytest.mark.timeout(420)  # 200 providers, twice, on a machine running other tests too
def test_providers_recreated_mid_write_show_their_own_spec_and_deleted_ones_stop(
    cluster: Cluster, namespace: str, fake: FakeProvider, tmp_path: Path
) -> None:
    names = [f"p{i:03}" for i in range(COUNT)]
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    try:
        cluster.apply(_listing([provider(n, fake.base_url) for n in names]), namespace)

        def ready() -> int:
            objs = _objects(cluster, namespace)
            return sum(
                1
                for o in objs
                if (c := condition(o, "Ready")) is not None and c["status"] == "True"
            )

        wait_for(lambda: ready() == COUNT, 240, f"{COUNT} providers Ready", every=2)
        # Deleted and re-created at once under the same names, pointing nowhere, while the
        # old loops probe and write every second.
        dead = f"http://127.0.0.1:{free_port()}/v1"
        cluster.kubectl("delete", "llmp", "--all", "-n", namespace, "--wait=false")
        cluster.apply(_listing([provider(n, dead, interval="1m") for n in names]), namespace)
        time.sleep(8)  # old loops' writes, were any left, would have landed by now
        wrong = [
            o["metadata"]["name"]
            for o in _objects(cluster, namespace)
            if (o.get("status") or {}).get("endpoint") == fake.base_url
            or (condition(o, "Ready") or {}).get("status") == "True"
        ]
        assert wrong == [], f"status of the deleted objects on their successors: {wrong[:5]}"
        # Deleting them all stops every loop: no probe reaches the live fake any more, and the
        # operator's series for them go.
        cluster.kubectl("delete", "llmp", "--all", "-n", namespace, "--wait=false")
        wait_for(lambda: op.metric("signalbox_probers") == 0, 60, "no probe loop left")
        seen = len(fake.seen)
        time.sleep(3)
        assert len(fake.seen) == seen, "a loop of a deleted provider went on probing"
        assert "signalbox_probe_outcomes_total{" not in op.metrics()
    finally:
        op.stop()
