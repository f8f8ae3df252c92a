"""The chart's operator run as three replicas over four shards on the real node: the shards
spread over the pods, a replica killed under traffic hands its shards on within the lease
duration, every provider's status keeps following its pods, and the router serves throughout.
The release goes back to one Lease for all at the end, and a single leader takes over."""

from __future__ import annotations

import json
import time

from signalbox_operator.leadership import shards
from tests.e2e.conftest import CHART, Release
from tests.e2e.test_node_chart import loop_counts, pods, request_loop_pod
from tests.e2e.workloads import VLLM_MODEL
from tests.support.node import helm
from tests.support.operator import lease_holder, shard_holders, wait_for

SHARDS = 4
EXTRA = 24  # providers beyond the release's three, all on the vLLM pods
OPERATORS = "app.kubernetes.io/component=operator"


def holders(release: Release) -> dict[int, str | None]:
    return shard_holders(release.cluster, release.namespace, SHARDS)


def settled(release: Release) -> dict[int, str] | None:
    """The holders, once every shard is held by the pod the assignment names."""
    expected = shards.assignment(SHARDS, pods(release, OPERATORS))
    return expected if holders(release) == expected else None


def ready_count(release: Release, names: list[str]) -> int:
    listed = json.loads(release.kubectl("get", "llmp", "-o", "json"))
    return sum(
        1
        for o in listed["items"]
        if o["metadata"]["name"] in names
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in o.get("status", {}).get("conditions", [])
        )
    )


def extra_providers() -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "LLMProvider",
            "metadata": {"name": f"pool-{i}"},
            "spec": {
                "type": "VLLM",
                "endpoint": {"service": {"name": "vllm", "port": 80, "path": "/v1"}},
                "models": [{"name": VLLM_MODEL}],
                "healthCheck": {"interval": "2s", "timeout": "1s", "unhealthyThreshold": 2},
            },
        }
        for i in range(EXTRA)
    ]


def test_three_operator_replicas_share_shards_and_survive_a_kill_under_traffic(
    release: Release,
) -> None:
    def upgrade(*extra: str) -> None:
        helm(
            release.cluster, "upgrade", release.name, str(CHART), "-n", release.namespace,
            "--wait", "--timeout", "5m", *release.values(*extra),
        )  # fmt: skip

    names = ["vllm", *(f"pool-{i}" for i in range(EXTRA))]
    upgrade("operator.replicas=3", f"operator.shards={SHARDS}")
    try:
        release.kubectl("rollout", "status", f"deploy/{release.name}-operator", "--timeout=180s")
        release.cluster.apply(
            {"apiVersion": "v1", "kind": "List", "items": extra_providers()}, release.namespace
        )
        before = wait_for(lambda: settled(release), 90, "each shard held by its pod")
        assert len(set(before.values())) == 3, before
        wait_for(lambda: ready_count(release, names) == len(names) or None, 90, "all Ready")

        loop = request_loop_pod(release, 60)
        victim = before[0]
        release.kubectl("delete", "pod", victim, "--grace-period=0", "--force")
        killed = time.monotonic()
        wait_for(lambda: victim not in holders(release).values() or None, 60, "shards passed on")
        handed = time.monotonic() - killed
        release.kubectl("rollout", "status", f"deploy/{release.name}-operator", "--timeout=180s")
        after = wait_for(lambda: settled(release), 90, "each shard held by a live pod")
        assert victim not in after.values()

        # Every shard is worked: the pool's pods go away and come back, and all follow.
        release.kubectl("scale", "deploy/vllm", "--replicas=0")
        try:
            wait_for(lambda: ready_count(release, names) == 0 or None, 60, "none Ready")
        finally:
            release.kubectl("scale", "deploy/vllm", "--replicas=3")
        release.kubectl("rollout", "status", "deploy/vllm", "--timeout=120s")
        wait_for(lambda: ready_count(release, names) == len(names) or None, 90, "all Ready again")
        counts = loop_counts(release, loop, 60)
        print(f"a killed replica's shards passed on in {handed:.1f}s; requests: {counts}")
        assert handed < 15 + 2 * 2 + 5, "longer than the lease duration and two retries"
        assert set(counts) == {"200"}, counts
    finally:
        release.kubectl(
            "delete", "llmp", *(f"pool-{i}" for i in range(EXTRA)), "--ignore-not-found"
        )
        upgrade()
    release.kubectl("rollout", "status", f"deploy/{release.name}-operator", "--timeout=180s")
    leader = wait_for(
        lambda: lease_holder(release.cluster, release.namespace), 90, "one leader again"
    )
    assert leader in pods(release, OPERATORS)
    assert all(holder is None for holder in holders(release).values())
