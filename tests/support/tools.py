"""The tools the chart's artifacts are checked with, built once by hack/build-binaries.sh.

promtool, helm, the Argo CD health harness, the dashboard checker and prometheus-operator's CRDs
are all cached in ~/.cache/signalbox; the first use of each builds it (minutes), later ones
reuse it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import REPO

CHART = REPO / "charts" / "signalbox"
FULL_VALUES = CHART / "values-full.yaml"
# The Kubernetes version offline rendering assumes (the test cluster's own minor).
KUBE = ("--kube-version", "v1.35.0")


def built(tool: str) -> Path:
    """The path of ``tool``, building it first when it is not cached; fails the test if it can't."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh"), tool],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"could not build {tool}:\n{proc.stderr[-3000:]}", pytrace=False)
    return Path(proc.stdout.split()[-1])


def run(argv: list[str | Path], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a tool and returns what it did, without judging the exit status."""
    return subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart (release "sb"), as a list of documents."""
    proc = run([helm, "template", "sb", CHART, *KUBE, *args])
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def rendered_rules(helm: Path, *args: str) -> dict[str, Any]:
    """The spec of the chart's PrometheusRule (its rule groups), values-full plus ``args``."""
    docs = render(helm, "-f", str(FULL_VALUES), *args)
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1, [d["kind"] for d in docs]
    spec: dict[str, Any] = rules[0]["spec"]
    return spec
