"""Runs the real router in Kubernetes mode as a separate process against a test cluster."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cluster import REPO, Cluster
from tests.support.operator import free_port, stop_process, wait_for
from tests.support.router import answers_as_router


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
        for _ in range(3):  # a port taken between the pick and the bind: pick another
            said_before = self._said()
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
            try:
                wait_for(self._healthy, 20, "the router's /healthz")
            except AssertionError:
                if "address already in use" not in self._said()[said_before:]:
                    raise
                self.port = free_port()
                continue
            return self
        raise AssertionError(f"the router found no free port (log: {self.log_path})")

    def _said(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the router exited with {self.proc.returncode}")
        return answers_as_router(self.url)

    def stop(self) -> None:
        stop_process(self.proc)
