"""The probe fleet is cheap to the providers: many providers on one endpoint share their probes,
so the endpoint sees about one probe a second, not one per provider per interval."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

from signalbox_fake import FakeProvider, Flavor
from tests.support import router as router_support
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, wait_for

COUNT = 150


def _ready(cluster: Cluster, namespace: str) -> int:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "llmp", "-n", namespace, "-o", "json").stdout
    )["items"]
    return sum(1 for o in items if (c := condition(o, "Ready")) and c["status"] == "True")


def test_providers_on_one_endpoint_share_their_probes(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    with FakeProvider(
        "shared", Flavor.OPENAI, ["m"], host="127.0.0.11"
    ).running_in_thread() as fake:
        op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
        try:
            providers = [
                router_support.provider(
                    f"p{i:03}",
                    "OpenAICompatible",
                    fake.base_url,
                    models=["m"],
                    healthCheck={"interval": "2s", "timeout": "1s"},
                )
                for i in range(COUNT)
            ]
            cluster.apply({"apiVersion": "v1", "kind": "List", "items": providers}, namespace)
            wait_for(lambda: _ready(cluster, namespace) == COUNT, 120, "all Ready", every=1)
            seen = len(fake.seen)
            time.sleep(6)
            probes = [r for r in fake.seen[seen:] if r.path.endswith("/models")]
            shared = op.metric("signalbox_probes_shared_total")
        finally:
            op.stop()
    per_second = collections.Counter(int(r.at) for r in probes)
    # Unshared, 150 providers probed every 2 s would send 75 probes a second.
    assert probes, "the providers are still probed"
    assert max(per_second.values()) <= 3, per_second
    assert len(probes) <= 12
    assert shared is not None
    assert shared > COUNT
