"""The Grafana dashboard against Grafana's published dashboard schema.

hack/tools/dashboard-check decodes the dashboard strictly with the Apache-licensed Grafana
Foundation SDK (types generated from Grafana's own schema, panel options checked against each
panel plugin's schema) and validates it, then lists what every panel's queries select.
tests/controlplane/test_metrics_contract.py holds those against the metrics really exported.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import tools

DASHBOARD = tools.CHART / "files" / "dashboards" / "signalbox.json"


@pytest.fixture(scope="module")
def checker() -> Path:
    return tools.built("dashboard-check")


def _check(checker: Path, board: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(board), encoding="utf-8")
    proc = tools.run([checker, "dashboard", path])
    return proc.returncode, proc.stdout + proc.stderr


def test_dashboard_matches_grafanas_schema(checker: Path) -> None:
    proc = tools.run([checker, "dashboard", DASHBOARD])
    assert proc.returncode == 0, proc.stderr
    panels = json.loads(proc.stdout)
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert [p["title"] for p in panels] == [p["title"] for p in board["panels"]]
    for panel in panels:
        assert panel["queries"], panel["title"]
        for query in panel["queries"]:
            assert query["metrics"], (panel["title"], query["expr"])
            assert all(name.startswith("signalbox_") for name in query["metrics"]), query


def _broken(change: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    board = copy.deepcopy(board)
    panel = board["panels"][0]
    if change == "unknown-field":
        board["pannels"] = board.pop("panels")
    elif change == "wrong-type":
        panel["gridPos"]["h"] = "tall"
    elif change == "unknown-panel-field":
        panel["legend"] = {"show": True}  # a Grafana 6 graph option, not a timeseries field
    elif change == "bad-query":
        panel["targets"][0]["expr"] = "sum by (provider (signalbox_provider_up)"
    return board


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("unknown-field", "pannels"),
        ("wrong-type", "gridPos"),
        ("unknown-panel-field", "legend"),
        ("bad-query", "parsing"),
    ],
)
def test_broken_dashboards_are_refused(
    checker: Path, tmp_path: Path, change: str, said: str
) -> None:
    code, output = _check(checker, _broken(change), tmp_path)
    assert code != 0
    assert said in output
