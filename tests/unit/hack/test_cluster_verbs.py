"""hack/cluster.sh takes the cluster's name as an argument, and its API-server verbs say what is
wrong instead of starting anything (no cluster is started here)."""

from __future__ import annotations

import os
import subprocess

from tests.support.cluster import CLUSTER_SCRIPT


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SIGNALBOX_CLUSTER": "from-env", **env},
        timeout=60,
        check=False,
    )


def test_the_name_argument_wins_over_the_environment() -> None:
    proc = _run("status", "from-arg")
    assert proc.returncode == 1
    assert "cluster 'from-arg' is not running" in proc.stderr
    assert "cluster 'from-env' is not running" in _run("status").stderr


def test_apiserver_verbs_of_a_cluster_that_never_ran() -> None:
    stopped = _run("stop-apiserver", "never-started")
    assert stopped.returncode == 1
    assert "cluster 'never-started' is not running" in stopped.stderr
    started = _run("start-apiserver", "never-started")
    assert started.returncode == 1
    assert "cluster 'never-started' was never started" in started.stderr


def test_usage_names_every_verb() -> None:
    proc = _run("sideways")
    assert proc.returncode == 2
    for verb in ("up", "down", "status", "stop-apiserver", "start-apiserver"):
        assert verb in proc.stderr
