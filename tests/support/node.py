"""A real node (hack/node.sh) seen from tests: start it, load the images, install the chart.

The node runs pods in its own network namespace, so tests reach a Service through
``kubectl port-forward`` (API server, kubelet, the pod), which is what a person would do.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cluster import REPO, Cluster

NODE_SCRIPT = REPO / "hack" / "node.sh"
IMAGES_SCRIPT = REPO / "hack" / "node-images.sh"
IMAGE_REGISTRY = "signalbox.local"
IMAGE_TAG = "dev"
FAKE_IMAGE = f"{IMAGE_REGISTRY}/signalbox-dev/fake-provider:{IMAGE_TAG}"
ROUTER_IMAGE = f"{IMAGE_REGISTRY}/signalbox-dev/router:{IMAGE_TAG}"
# The node's own address, inside its network namespace: its pods reach a process listening there.
NODE_IP = "198.18.255.1"


def netns(name: str) -> str:
    """The network namespace of node ``name`` (hack/node.sh's NETNS)."""
    return f"sbx-{name[:11]}"


class NodeError(RuntimeError):
    """The node, its images or the chart could not be set up."""


def _script(*args: str, timeout: float = 3600) -> str:
    proc = subprocess.run(
        ["bash", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


def start(name: str) -> Cluster:
    """Start (or reuse) the named node; build and import the images it runs."""
    kubeconfig = Path(_script(str(NODE_SCRIPT), "up", name).strip().splitlines()[-1])
    archives = [line.split()[1] for line in _script(str(IMAGES_SCRIPT)).splitlines() if line]
    _script(str(NODE_SCRIPT), "import", name, *archives, timeout=600)
    return Cluster(kubeconfig=kubeconfig, name=name)


def stop(name: str) -> None:
    subprocess.run(
        ["bash", str(NODE_SCRIPT), "down", name], capture_output=True, timeout=300, check=False
    )


def _containerd_socket(name: str) -> Path:
    cache = os.environ.get("SIGNALBOX_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signalbox"
    )
    return Path(cache) / "nodes" / name / "run" / "containerd.sock"


def container_pid(name: str, container_id: str) -> int:
    """The host PID of a container's main process on the node ``name``, from the node's own
    containerd (``ctr tasks ls``); ``container_id`` as a pod's status gives it
    (``containerd://<id>``). The node's processes run on this machine, so root can signal it."""
    wanted = container_id.removeprefix("containerd://")
    sock = str(_containerd_socket(name))
    out = subprocess.run(
        ["ctr", "--address", sock, "-n", "k8s.io", "tasks", "ls"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == wanted:
            return int(pid)
    raise AssertionError(f"no running task {wanted} in the node's containerd")


def helm_binary() -> Path:
    out = _script(str(REPO / "hack" / "build-binaries.sh"), "helm")
    return Path(out.split()[1])


def kubectl_binary() -> Path:
    """The kubectl built for the node's Kubernetes version (hack/build-binaries.sh)."""
    out = _script(str(REPO / "hack" / "build-binaries.sh"), "kubectl")
    return Path(out.split()[1])


def helm(cluster: Cluster, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


@contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward TARGET :PORT``; yields the local port on 127.0.0.1."""
    proc = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, target, f":{port}", "--address=127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        local = 0
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if found:
                local = int(found.group(1))
                break
            if not line and proc.poll() is not None:
                break
        if not local:
            raise AssertionError(f"kubectl port-forward {target} did not start")
        # it prints a line per connection: keep reading, so a full pipe never blocks it
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)
