"""The lock check that `make test` runs fails when uv.lock and pyproject.toml disagree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cluster import REPO


@pytest.fixture(scope="module")
def uv() -> Path:
    """The pinned uv that hack/lib/python.sh installs (installed first if it is missing)."""
    script = 'source hack/lib/common.sh && source hack/lib/python.sh && ensure_uv && echo "$UV"'
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.split()[-1])


def _project_copy(tmp_path: Path, pyproject: str) -> Path:
    """pyproject.toml (as given) and the real uv.lock, with the package folders they name."""
    (tmp_path / "pyproject.toml").write_text(pyproject)
    shutil.copy(REPO / "uv.lock", tmp_path / "uv.lock")
    for folder in ("operator", "router"):
        (tmp_path / folder).mkdir()
    return tmp_path


def _check(uv: Path, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(uv), "lock", "--check", "--offline"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_lock_matches_the_ranges(uv: Path, tmp_path: Path) -> None:
    proc = _check(uv, _project_copy(tmp_path, (REPO / "pyproject.toml").read_text()))
    assert proc.returncode == 0, proc.stderr


def test_a_range_the_lock_does_not_know_fails_the_check(uv: Path, tmp_path: Path) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"orjson>=3.9"' in pyproject, "the range this test narrows"
    narrowed = pyproject.replace('"orjson>=3.9"', '"orjson>=3.10"')
    proc = _check(uv, _project_copy(tmp_path, narrowed))
    assert proc.returncode != 0
    assert "needs to be updated" in proc.stderr
