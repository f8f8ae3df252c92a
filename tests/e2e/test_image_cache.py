"""The images the node runs are built into a cache that stays bounded build after build."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.cluster import Cluster

ARCHIVE = re.compile(r"(?P<image>.+)-[0-9a-f]{12}\.tar")


def _cache() -> Path:
    return Path(
        os.environ.get("SIGNALBOX_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signalbox"
    )


def _buildah(*args: str) -> list[str]:
    storage = _cache() / "buildah"
    command = ["buildah", "--storage-driver", "vfs", "--root", str(storage / "storage"),
               "--runroot", str(storage / "run"), *args]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()


def test_the_image_cache_keeps_one_archive_per_image_and_no_untagged_layers(node: Cluster) -> None:
    # The node fixture has built (or reused) every image: older builds must be gone by now.
    archives = [ARCHIVE.fullmatch(p.name) for p in (_cache() / "images").iterdir()]
    images = sorted(match["image"] for match in archives if match)
    assert images == ["fake-provider", "operator", "pause", "router"]
    listing = _buildah("images", "--all", "--format", "{{.Name}}:{{.Tag}}")
    assert listing, "buildah's storage lists no image at all"
    assert [ref for ref in listing if "<none>" in ref] == []
    assert _buildah("containers", "--quiet") == [], "a build's working containers were left"
