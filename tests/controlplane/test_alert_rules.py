"""The chart's alert rules in Prometheus' own tooling: `promtool check rules` and `test rules`.

The rule groups come from the rendered PrometheusRule; tests/rules/signalbox-alerts.test.yaml
feeds input series to every alert and says when each must fire (with which labels and
annotations) and when it must stay silent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import tools
from tests.support.cluster import REPO

UNIT_TESTS = REPO / "tests" / "rules" / "signalbox-alerts.test.yaml"


@pytest.fixture(scope="module")
def helm() -> Path:
    return tools.built("helm")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return tools.built("promtool")


def _write_rules(directory: Path, spec: dict[str, Any]) -> Path:
    """The rule file promtool reads, beside a copy of the unit tests that name it."""
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": spec["groups"]}, sort_keys=False), encoding="utf-8")
    shutil.copy(UNIT_TESTS, directory / UNIT_TESTS.name)
    return rules


def _rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in spec["groups"] for rule in group["rules"]]


def test_rules_pass_promtool_check(helm: Path, promtool: Path, tmp_path: Path) -> None:
    spec = tools.rendered_rules(helm)
    rules = _write_rules(tmp_path, spec)
    proc = tools.run([promtool, "check", "rules", rules])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules(spec))} rules found" in proc.stdout


def test_alerts_pass_their_unit_tests(helm: Path, promtool: Path, tmp_path: Path) -> None:
    _write_rules(tmp_path, tools.rendered_rules(helm))
    proc = tools.run([promtool, "test", "rules", tmp_path / UNIT_TESTS.name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_rule_has_firing_and_silent_cases(helm: Path) -> None:
    rules = _rules(tools.rendered_rules(helm))
    suite = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    checks = [c for test in suite["tests"] for c in test.get("alert_rule_test", [])]
    recorded = {str(e["expr"]) for t in suite["tests"] for e in t.get("promql_expr_test", [])}
    for rule in rules:
        if "record" in rule:  # a recording rule is tested by querying what it records
            assert any(rule["record"] in expr for expr in recorded), rule["record"]
            continue
        name = rule["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in checks), name
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in checks), name
    assert len(rules) == 5


@pytest.mark.parametrize(
    ("setting", "broken"),
    [
        ("metrics.prometheusRule.errorRatio=0.5", "SignalboxRouterErrorRate"),
        ("metrics.prometheusRule.circuitOpenMinutes=30", "SignalboxCircuitOpen"),
        ("metrics.prometheusRule.limitedRatio=0.01", "SignalboxRateLimitSaturation"),
    ],
)
def test_unit_tests_catch_a_changed_threshold(
    helm: Path, promtool: Path, tmp_path: Path, setting: str, broken: str
) -> None:
    _write_rules(tmp_path, tools.rendered_rules(helm, "--set-json", setting))
    proc = tools.run([promtool, "test", "rules", tmp_path / UNIT_TESTS.name])
    assert proc.returncode != 0
    assert broken in proc.stdout + proc.stderr
