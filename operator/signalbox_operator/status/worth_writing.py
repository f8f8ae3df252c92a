"""When an LLMProvider's computed status is worth a write to the API server.

What people change (spec, references, the circuit annotation) is written at once; what probes
find at most once per the provider's interval, whatever the failure pattern; the figures that
change on every probe (latency, times, success rate, the failure count) at most once every
``REFRESH_SECONDS``. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from signalbox_api.conditions import ConditionType, Reason

REFRESH_SECONDS = 60.0

_VOLATILE_HEALTH = (
    "lastProbeTime",
    "lastSuccessTime",
    "latencyMs",
    "latency",
    "successRate",
    "lastHour",
    "lastDay",
)
_VOLATILE_CIRCUIT = ("consecutiveFailures",)
# What people change (spec, Secret, Service, annotation), as opposed to what probes find.
_DECLARED_CONDITIONS = (ConditionType.ACCEPTED, ConditionType.RESOLVED_REFS)
_FIRST_OR_FAILED = (None, Reason.PENDING, Reason.OPERATOR_ERROR)


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the figures that change on every probe."""
    out = dict(status)
    health = dict(out.get("health") or {})
    for key in _VOLATILE_HEALTH:
        health.pop(key, None)
    out["health"] = health
    if isinstance(out.get("circuit"), dict):
        out["circuit"] = {k: v for k, v in out["circuit"].items() if k not in _VOLATILE_CIRCUIT}
    return out


def _conds(status: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    return {
        str(c.get("type")): (c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or ()
        if isinstance(c, dict)
    }


def urgent(written: dict[str, Any], new: dict[str, Any]) -> bool:
    """A change someone made (spec, references, annotation), or the first verdict after
    Pending: shown at once rather than at the next write slot."""
    if written.get("observedGeneration") != new.get("observedGeneration"):
        return True
    old, now = _conds(written), _conds(new)
    if any(old.get(t) != now.get(t) for t in _DECLARED_CONDITIONS):
        return True
    if old.get(ConditionType.READY, (None, None, None))[1] in _FIRST_OR_FAILED:
        return True
    if written.get("selfTest") != new.get("selfTest"):
        return True  # a self-test someone asked for
    before = (written.get("circuit") or {}).get("override")
    after = (new.get("circuit") or {}).get("override")
    return before != after or written.get("endpoint") != new.get("endpoint")


def should_write(
    written: dict[str, Any] | None,
    new: dict[str, Any],
    written_at: datetime | None,
    now: datetime,
    min_gap: float = 0.0,
) -> bool:
    """Write what people changed at once; what probes found at most once per ``min_gap`` (the
    provider's interval); mere figures at most every REFRESH_SECONDS."""
    if written is None or written_at is None:
        return True
    if new == written:
        return False
    since = (now - written_at).total_seconds()
    if urgent(written, new):
        return True
    if comparable(written) != comparable(new):
        return since >= min_gap
    return since >= REFRESH_SECONDS
