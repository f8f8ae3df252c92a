"""The chart's Redis options for the routers' shared limits and cache: an existing Redis (its
URL, or a Secret holding it), a bundled one, and the warning when several replicas share none."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.test_chart import CHART, KUBE, _docs, run_helm
from tests.support.cluster import REPO, Cluster


@pytest.fixture(scope="module")
def helm() -> Path:
    """The helm binary, built once by hack/build-binaries.sh and cached."""
    script = REPO / "hack" / "build-binaries.sh"
    proc = subprocess.run(
        ["bash", str(script), "helm"], capture_output=True, text=True, timeout=3600, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"could not build helm:\n{proc.stderr[-3000:]}", pytrace=False)
    return Path(proc.stdout.split()[-1])


def _router(rendered: str) -> dict[str, Any]:
    router: dict[str, Any] = next(
        d
        for d in _docs(rendered)
        if d["kind"] == "Deployment" and "router" in d["metadata"]["name"]
    )
    container: dict[str, Any] = router["spec"]["template"]["spec"]["containers"][0]
    return container


def test_an_existing_redis_is_read_from_a_secret_and_passes_the_server_dry_run(
    helm: Path, cluster: Cluster, namespace: str
) -> None:
    values = [
        "--set",
        "router.redis.existingSecret=redis",
        "--set",
        "router.redis.fallbackReplicas=3",
    ]
    rendered = run_helm(helm, None, "template", "sb", str(CHART), "-n", namespace, *KUBE, *values)
    container = _router(rendered)
    assert "--redis-fallback-replicas=3" in container["args"]
    assert "--redis-expected-replicas=2" in container["args"]  # router.replicas, until counted
    assert not any("redis://" in a for a in container["args"])  # never in the pod spec
    (env,) = [e for e in container["env"] if e["name"] == "SIGNALBOX_REDIS_URL"]
    assert env["valueFrom"] == {"secretKeyRef": {"name": "redis", "key": "url"}}
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_bundled_redis_is_what_the_routers_use(helm: Path) -> None:
    values = ["--set", "router.redis.bundled.enabled=true"]
    rendered = run_helm(helm, None, "template", "sb", str(CHART), "-n", "ns", *KUBE, *values)
    (env,) = [e for e in _router(rendered)["env"] if e["name"] == "SIGNALBOX_REDIS_URL"]
    assert env["value"] == "redis://sb-signalbox-redis.ns.svc:6379/0"
    service = next(d for d in _docs(rendered) if d["metadata"]["name"] == "sb-signalbox-redis")
    assert service["kind"] in {"Service", "Deployment"}


def test_without_redis_the_routers_run_as_before(helm: Path) -> None:
    rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE)
    container = _router(rendered)
    assert "env" not in container
    assert not any(a.startswith("--redis") for a in container["args"])
    assert "sb-signalbox-redis" not in rendered


def test_several_replicas_without_redis_get_a_warning(
    helm: Path, cluster: Cluster, namespace: str
) -> None:
    def notes(*values: str) -> str:
        out = run_helm(
            helm,
            cluster,
            "install",
            "sb",
            str(CHART),
            "-n",
            namespace,
            "--dry-run=server",
            "--set",
            "crds.install=false",
            *values,
        )
        return out.partition("NOTES:")[2]

    warned = notes()
    assert "WARNING: 2 router replicas and no Redis" in warned
    assert "up to 2 times its limits" in warned
    assert "WARNING" not in notes("--set", "router.redis.url=redis://redis:6379/0")
    assert "WARNING" not in notes("--set", "router.redis.bundled.enabled=true")
    assert "WARNING" not in notes("--set", "router.replicas=1")
