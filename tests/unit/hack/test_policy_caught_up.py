"""hack/policy_caught_up.py: when a demo may print a RoutingPolicy (its status has caught up)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.cluster import REPO

SCRIPT = REPO / "hack" / "policy_caught_up.py"


def provider(name: str, ready: bool = True, circuit: str = "Closed") -> dict[str, Any]:
    return {
        "kind": "LLMProvider",
        "metadata": {"name": name, "namespace": "demo"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "circuit": {"state": circuit},
        },
    }


def policy(*entries: tuple[str, bool, str]) -> dict[str, Any]:
    return {
        "kind": "RoutingPolicy",
        "metadata": {"name": "chat", "namespace": "demo"},
        "status": {"providers": [{"name": n, "eligible": e, "reason": r} for n, e, r in entries]},
    }


def caught_up(*items: dict[str, Any]) -> bool:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=json.dumps({"items": list(items)}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


@pytest.mark.parametrize(
    ("flaky", "entry", "expected"),
    [
        (provider("flaky"), ("flaky", True, "Ready"), True),
        (provider("flaky", circuit="Open"), ("flaky", True, "Ready"), False),  # the old view
        (provider("flaky", circuit="Open"), ("flaky", False, "CircuitOpen"), True),
        (provider("flaky", ready=False), ("flaky", True, "Ready"), False),
        (provider("flaky", ready=False), ("flaky", False, "Unhealthy"), True),
        (provider("flaky"), ("flaky", False, "Unhealthy"), False),  # recovered, not yet seen
        (provider("flaky"), ("flaky", False, "RateLimited"), True),  # not about health
    ],
)
def test_a_policy_has_caught_up_when_eligibility_matches_provider_health(
    flaky: dict[str, Any], entry: tuple[str, bool, str], expected: bool
) -> None:
    items = [flaky, provider("cloud"), policy(entry, ("cloud", True, "Ready"))]
    assert caught_up(*items) is expected


def test_a_provider_in_another_namespace_or_missing_does_not_block() -> None:
    other = provider("flaky", ready=False)
    other["metadata"]["namespace"] = "elsewhere"
    assert caught_up(other, policy(("flaky", True, "Ready"), ("gone", False, "NotFound")))
