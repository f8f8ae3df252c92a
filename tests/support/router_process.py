"""Runs the real router in Kubernetes mode as a separate process against a test cluster."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.cluster import REPO, Cluster
from tests.support.operator import free_port, wait_for


@dataclass
class KubeRouter:
    cluster: Cluster
    namespace: str
    log_path: Path
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)  # more command-line arguments
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KubeRouter:
        env = {**self.cluster.env, "PYTHONPATH": f"{REPO / 'router'}:{REPO / 'operator'}"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "signalbox_router",
                    "-n",
                    self.namespace,
                    "--port",
                    str(self.port),
                    "--resync",
                    "30",
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        wait_for(self._healthy, 20, "the router's /healthz")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
