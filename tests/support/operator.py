"""Runs the real operator as a separate process against the test cluster."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from signalbox_operator.leadership import shards
from tests.support.cluster import CLUSTER_SCRIPT, REPO, Cluster

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server a test starts. It comes from below the
    kernel's ephemeral range, where client connections take their own ports (a port picked
    there can be taken by a connection before the server binds it), and from this pytest-xdist
    worker's own slice of that, so that workers never pick the same one."""
    low, _ = _ephemeral_range()
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    slice_start = 10_000 + (worker % 16) * 1_000
    if slice_start + 1_000 > low:  # an unusual kernel setting: the kernel's own pick
        return _any_port(host)
    for port in _RNG.sample(range(slice_start, slice_start + 1_000), 1_000):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    return _any_port(host)


_RNG = random.Random()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _any_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(
    proc: subprocess.Popen[bytes] | None, *, kill: bool = False, grace: float = 10
) -> None:
    """End a test's child process, if it runs: SIGTERM (SIGKILL with ``kill``), then SIGKILL
    should it outlive ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class OperatorProcess:
    cluster: Cluster
    namespace: str
    log_path: Path
    identity: str = field(default_factory=lambda: f"op-{uuid.uuid4().hex[:6]}")
    metrics_port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)  # more command-line arguments
    env: dict[str, str] = field(default_factory=dict)  # more environment variables
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        args = [
            sys.executable,
            "-m",
            "signalbox_operator",
            "-n",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--lease-namespace",
            self.namespace,
            "--identity",
            self.identity,
            *self.extra,
        ]
        env = {
            **self.cluster.env,
            "PYTHONPATH": f"{REPO / 'operator'}:{REPO / 'router'}",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        return self

    def stop(self, kill: bool = False) -> None:
        stop_process(self.proc, kill=kill, grace=15)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen, as by a long GC pause or a stalled VM."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss(self) -> int:
        """The most resident memory the process has used so far, in bytes (VmHWM)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text: str = resp.read().decode()
                return text
        except OSError:
            return ""

    def metric(self, name: str) -> float | None:
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            found: dict[str, Any] = c
            return found
    return None


def events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "-o",
        "json",
        "--field-selector",
        f"involvedObject.name={name}",
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def environ_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def apiserver(cluster: Cluster, verb: str) -> None:
    """Stop or start the cluster's API server (etcd keeps running): ``stop`` or ``start``."""
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), f"{verb}-apiserver", cluster.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def audit_log(cluster: Cluster) -> list[dict[str, Any]]:
    """The API server's audit events (a cluster started with SIGNALBOX_AUDIT=1)."""
    path = cluster.kubeconfig.parent / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lease_holder(cluster: Cluster, namespace: str) -> str | None:
    proc = cluster.kubectl(
        "get", "lease", "signalbox-operator", "-n", namespace, "-o", "json", check=False
    )
    if proc.returncode != 0:
        return None
    holder: str | None = json.loads(proc.stdout)["spec"].get("holderIdentity")
    return holder


def shard_holders(
    cluster: Cluster, namespace: str, count: int, name: str = "signalbox-operator"
) -> dict[int, str | None]:
    """Who holds each of ``count`` shard Leases (``--shards count``) that exist."""
    listed = json.loads(cluster.kubectl("get", "lease", "-n", namespace, "-o", "json").stdout)
    by_name = {
        item["metadata"]["name"]: item["spec"].get("holderIdentity") for item in listed["items"]
    }
    return {
        i: by_name[lease]
        for i in range(count)
        if (lease := shards.shard_lease(name, i, count)) in by_name
    }
