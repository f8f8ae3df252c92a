"""hack/cluster.sh says what went wrong instead of hanging (no cluster is started here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support.cluster import CLUSTER_SCRIPT, REPO


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_missing_go_is_reported(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (
        "bash",
        "python3",
        "awk",
        "sed",
        "mktemp",
        "dirname",
        "cat",
        "rm",
        "mkdir",
        "head",
        "base64",
        "tr",
        "openssl",
        "curl",
        "setsid",
        "sleep",
        "seq",
        "kill",
        "chmod",
    ):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "SIGNALBOX_CACHE": str(tmp_path / "c"),
        "SIGNALBOX_CLUSTER": "no-go",
    }
    proc = subprocess.run(
        [shutil.which("bash") or "bash", str(CLUSTER_SCRIPT), "up"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "Go is not installed" in proc.stderr


def test_busy_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "SIGNALBOX_CLUSTER": "busy", "SIGNALBOX_APISERVER_PORT": str(port)}
        proc = _run(env, "up")
    assert proc.returncode != 0
    assert f"port {port} is busy" in proc.stderr
    cache = os.environ.get("SIGNALBOX_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signalbox"
    )
    assert not (Path(cache) / "clusters" / "busy").exists(), "nothing is left behind"


def test_status_of_a_cluster_that_is_not_running() -> None:
    env = {**os.environ, "SIGNALBOX_CLUSTER": "never-started"}
    proc = _run(env, "status")
    assert proc.returncode == 1
    assert "is not running" in proc.stderr


def test_usage() -> None:
    proc = _run(dict(os.environ), "sideways")
    assert proc.returncode == 2
    assert "usage" in proc.stderr
    assert (REPO / "hack" / "lib" / "versions.sh").read_text().count("KUBE_VERSION=") == 1
