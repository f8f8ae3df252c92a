"""The docs stay true to the tree: the top README stays a front door whose example is valid, and
every link and every path a README's "where does my change go" table names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from signalbox_api import admission
from tests.support.cluster import REPO

READMES = [
    REPO / "README.md",
    REPO / "crds" / "README.md",
    REPO / "operator" / "README.md",
    REPO / "router" / "README.md",
    REPO / "charts" / "signalbox" / "README.md",
    REPO / "hack" / "README.md",
    REPO / "tests" / "README.md",
]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_front_door_is_short() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the reference goes in a room's"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(readme: Path) -> None:
    missing = [
        target
        for target in _LINK.findall(readme.read_text())
        if "://" not in target and not (readme.parent / target).exists()
    ]
    assert missing == []


def test_the_first_provider_and_policy_are_valid() -> None:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    docs = [d for d in yaml.safe_load_all(block.group(1)) if d["kind"] != "Secret"]
    assert {d["kind"] for d in docs} == {"LLMProvider", "RoutingPolicy"}
    for doc in docs:
        assert admission.validate(doc) == [], doc["metadata"]["name"]


def _table_paths(readme: Path) -> list[str]:
    """The backticked paths in the second column of the "Where does my change go" table."""
    text = readme.read_text()
    start = text.index("## Where does my change go")
    table = text[start:].split("\n## ", 1)[0]
    paths = []
    rows = [r for r in table.splitlines() if r.startswith("|")][2:]  # past the head and rule
    for row in rows:
        cells = row.split("|")
        if len(cells) > 2:
            paths += [
                p for p in re.findall(r"`([^`]+)`", cells[2]) if "/" in p or p.endswith(".py")
            ]
    return paths


@pytest.mark.parametrize("room", ["operator", "router"])
def test_where_my_change_goes_names_real_places(room: Path) -> None:
    paths = _table_paths(REPO / room / "README.md")
    assert len(paths) >= 8
    roots = [REPO / top for top in ("operator", "router", "crds", "charts", "hack", "tests")]
    missing = [
        p
        for p in paths
        if not (REPO / p).exists() and not any(any(r.glob(f"**/{p.rstrip('/')}")) for r in roots)
    ]
    assert missing == []
