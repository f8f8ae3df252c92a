"""The Argo CD health checks in Argo CD's own engine: gopher-lua, set up as Argo CD sets it up.

hack/tools/argocd-health runs a script the way Argo CD's controller runs a custom health check
(the same Lua implementation, the same libraries, the same decoding of the object and of the
answer). The table of objects is the one tests/unit/hack/test_argocd_health.py runs through lupa;
both engines must give the same answer for every object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import tools
from tests.support.argocd_cases import CASES
from tests.unit.hack.test_argocd_health import SCRIPTS, run_health


@pytest.fixture(scope="module")
def harness() -> Path:
    return tools.built("argocd-health")


def _run(harness: Path, script: Path, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    proc = tools.run([harness, script], stdin=json.dumps(objects))
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, str]] = json.loads(proc.stdout)
    assert len(results) == len(objects)
    return results


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_every_case_in_argo_cds_engine(harness: Path, kind: str) -> None:
    cases = [case for case in CASES if case[1] == kind]
    results = _run(harness, SCRIPTS[kind], [obj for _, _, obj, _, _ in cases])
    seen = set()
    for (case_id, _, obj, expected, fragments), health in zip(cases, results, strict=True):
        assert "error" not in health, (case_id, health)
        assert health["status"] == expected, (case_id, health)
        for fragment in fragments:
            assert fragment in health["message"], (case_id, health)
        assert health == run_health(kind, obj), f"{case_id}: gopher-lua and Lua 5.1 disagree"
        seen.add(expected)
    assert {"Healthy", "Progressing", "Degraded"} <= seen


def test_the_sandbox_is_argo_cds(harness: Path, tmp_path: Path) -> None:
    """What a script may use: no string or math library, os only through require."""
    probes = {
        "string-library": ('hs = {status = string.format("%s", "Healthy")}\nreturn hs', "error"),
        "string-method": ('return {status = ("Healthy"):lower()}', "error"),
        "math-library": (
            'return {status = "Healthy", message = tostring(math.floor(1.5))}',
            "error",
        ),
        "global-os": ('return {status = "Healthy", message = tostring(os.time())}', "error"),
        "required-os": (
            'local os = require("os")\nreturn {status = "Healthy", message = type(os.time())}',
            "number",
        ),
        "table-library": (
            'local t = {}\ntable.insert(t, "ok")\nreturn {status = "Healthy", message = t[1]}',
            "ok",
        ),
        "odd-status": ('return {status = "Fine"}', "Lua returned an invalid health status"),
        "not-a-table": ('return "Healthy"', "error"),
    }
    for name, (source, want) in probes.items():
        script = tmp_path / f"{name}.lua"
        script.write_text(source, encoding="utf-8")
        [health] = _run(harness, script, [{"kind": "LLMProvider"}])
        if want == "error":
            assert "error" in health, (name, health)
        else:
            assert health.get("message") == want, (name, health)


def test_integers_arrive_as_numbers(harness: Path, tmp_path: Path) -> None:
    """Argo CD decodes JSON integers to Lua numbers, so generation comparisons work."""
    script = tmp_path / "gen.lua"
    script.write_text(
        'return {status = "Healthy", message = type(obj.metadata.generation) .. " "'
        " .. tostring(obj.metadata.generation + 1)}",
        encoding="utf-8",
    )
    [health] = _run(harness, script, [{"metadata": {"generation": 41}}])
    assert health == {"status": "Healthy", "message": "number 42"}
