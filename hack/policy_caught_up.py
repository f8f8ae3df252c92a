"""Exit 0 once every RoutingPolicy's status agrees with its providers' (the demos wait on it).

Reads ``kubectl get llmp,llmrp -o json`` on standard input. The operator writes a policy's
status a moment after its providers', so a print taken in between shows a provider that just
broke as still eligible. A policy has caught up when each provider it lists is marked eligible
only if that provider is Ready with its circuit not open, and is not held back as Unhealthy or
CircuitOpen once it is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_HEALTH_REASONS = frozenset({"Unhealthy", "CircuitOpen"})


def _healthy(provider: dict[str, Any]) -> bool:
    status = provider.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return ready and (status.get("circuit") or {}).get("state") != "Open"


def caught_up(items: list[dict[str, Any]]) -> bool:
    providers = {
        (i["metadata"].get("namespace"), i["metadata"]["name"]): _healthy(i)
        for i in items
        if i.get("kind") == "LLMProvider"
    }
    for policy in (i for i in items if i.get("kind") == "RoutingPolicy"):
        namespace = policy["metadata"].get("namespace")
        for entry in (policy.get("status") or {}).get("providers") or []:
            healthy = providers.get((namespace, entry["name"]))
            if healthy is None:
                continue  # not found: the policy says so itself
            if entry.get("eligible") and not healthy:
                return False
            if healthy and entry.get("reason") in _HEALTH_REASONS:
                return False
    return True


def main() -> int:
    return 0 if caught_up(json.load(sys.stdin).get("items") or []) else 1


if __name__ == "__main__":
    sys.exit(main())
