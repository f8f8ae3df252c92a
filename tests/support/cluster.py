"""The local control plane (hack/cluster.sh) seen from tests: start it, run kubectl against it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster.sh"


class ClusterError(RuntimeError):
    """The control plane could not be started."""


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    name: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl; with ``check``, a failure raises with kubectl's own words."""
        proc = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def apply(self, manifest: dict[str, Any] | str, namespace: str) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.kubectl("apply", "-n", namespace, "-f", "-", stdin=text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def create_namespace(self, prefix: str) -> str:
        name = f"{prefix[:40].rstrip('-')}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        return name


def start(name: str) -> Cluster:
    """Start (or reuse) the named local control plane and install the CRDs."""
    env = {**os.environ, "SIGNALBOX_CLUSTER": name}
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "up"],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(f"hack/cluster.sh up failed:\n{proc.stderr[-4000:]}")
    cluster = Cluster(kubeconfig=Path(proc.stdout.strip().splitlines()[-1]), name=name)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/llmproviders.signalbox.dev",
        "crd/routingpolicies.signalbox.dev",
    )
    return cluster


def stop(name: str) -> None:
    env = {**os.environ, "SIGNALBOX_CLUSTER": name}
    subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "down"],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
