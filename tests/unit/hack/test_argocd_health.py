"""The Argo CD health checks in charts/signalbox/argocd, run in Lua 5.1 through lupa (fast).

tests/controlplane/test_argocd_engine.py runs the same table in gopher-lua, Argo CD's own engine.

Argo CD runs them in gopher-lua (Lua 5.1) with only the base and table libraries and a global
``obj`` decoded from the live object, and reads back the table the chunk returns. The sandbox here
is as small: no string, math, io, os or debug library, and no string methods.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import lupa.lua51
import pytest
import yaml

from tests.support import argocd_cases
from tests.support.argocd_cases import CASES
from tests.support.cluster import REPO

ARGOCD_DIR = REPO / "charts" / "signalbox" / "argocd"
SCRIPTS = {
    "LLMProvider": ARGOCD_DIR / "llmprovider-health.lua",
    "RoutingPolicy": ARGOCD_DIR / "routingpolicy-health.lua",
}
CONFIGMAP_KEY = "resource.customizations.health.signalbox.dev_{kind}"
VALID_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# What Argo CD's sandbox lacks; the string metatable goes too, so ("x"):len() fails as it would.
_SANDBOX = """
debug.setmetatable("", nil)
string, math, io, os, debug, coroutine, python = nil, nil, nil, nil, nil, nil, nil
"""


def _to_lua(lua: Any, value: Any) -> Any:
    """Python JSON-like data as Argo CD decodes it: lists are 1-based tables, None is nil."""
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table(*(_to_lua(lua, v) for v in value))
    return value


def run_health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Run the health script for ``kind`` against ``obj`` and return what Argo CD would read."""
    lua = lupa.lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(_SANDBOX)
    lua.globals().obj = _to_lua(lua, obj)
    chunk = lua.compile(SCRIPTS[kind].read_text(encoding="utf-8"))
    result = chunk()
    assert lupa.lua51.lua_type(result) == "table", f"the script returned {result!r}"
    out = {str(k): v for k, v in result.items()}
    assert set(out) == {"status", "message"}
    assert isinstance(out["status"], str)
    assert isinstance(out["message"], str)
    assert out["status"] in VALID_STATUSES
    return out


@pytest.mark.parametrize(
    ("kind", "obj", "expected", "fragments"),
    [pytest.param(kind, obj, exp, frags, id=id_) for id_, kind, obj, exp, frags in CASES],
)
def test_health(kind: str, obj: dict[str, Any], expected: str, fragments: tuple[str, ...]) -> None:
    health = run_health(kind, obj)
    assert health["status"] == expected, health
    for fragment in fragments:
        assert fragment in health["message"], health


def test_cases_cover_every_outcome() -> None:
    seen = {(kind, expected) for _, kind, _, expected, _ in CASES}
    for status in ("Healthy", "Progressing", "Degraded", "Unknown"):
        assert ("LLMProvider", status) in seen
        assert ("RoutingPolicy", status) in seen
    assert ("LLMProvider", "Suspended") in seen
    assert len(CASES) >= 15


def test_policy_ready_without_degraded_condition_is_plain_healthy() -> None:
    health = run_health(
        "RoutingPolicy",
        argocd_cases.policy(
            argocd_cases.p_status(
                argocd_cases.cond("Ready", "True", "Ready", "1 eligible provider(s)")
            )
        ),
    )
    assert health == {"status": "Healthy", "message": "ready"}


def test_sandbox_lacks_the_string_library() -> None:
    lua = lupa.lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(_SANDBOX)
    with pytest.raises(lupa.lua51.LuaError):
        lua.execute('return ("x"):upper()')
    assert lua.eval("string") is None


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_patch_embeds_the_scripts_verbatim(kind: str) -> None:
    patch = yaml.safe_load((ARGOCD_DIR / "argocd-cm-patch.yaml").read_text(encoding="utf-8"))
    assert patch["apiVersion"] == "v1"
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"]["name"] == "argocd-cm"
    embedded = patch["data"][CONFIGMAP_KEY.format(kind=kind)]
    assert embedded == SCRIPTS[kind].read_text(encoding="utf-8")


def test_patch_holds_only_the_two_health_keys() -> None:
    patch = yaml.safe_load((ARGOCD_DIR / "argocd-cm-patch.yaml").read_text(encoding="utf-8"))
    assert set(patch["data"]) == {CONFIGMAP_KEY.format(kind=kind) for kind in SCRIPTS}


def test_readme_names_the_configmap_keys() -> None:
    readme = (ARGOCD_DIR / "README.md").read_text(encoding="utf-8")
    for kind in SCRIPTS:
        assert CONFIGMAP_KEY.format(kind=kind) in readme


def test_generated_scripts_match_their_sources() -> None:
    """The scripts and the patch are generated from src/; hand edits or a stale run fail here."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "hack" / "argocd_health.py"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_helpers_live_once_and_reach_both_scripts() -> None:
    helpers = (ARGOCD_DIR / "src" / "helpers.lua").read_text(encoding="utf-8")
    assert "local function find_condition" in helpers
    for path in (ARGOCD_DIR / "src").glob("*.lua"):
        if path.name != "helpers.lua":
            assert "local function find_condition" not in path.read_text(encoding="utf-8")
    for script in SCRIPTS.values():
        assert script.read_text(encoding="utf-8").count("local function find_condition") == 1
