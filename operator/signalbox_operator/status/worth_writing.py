"""When an LLMProvider's computed status is worth a write to the API server.

What people change (spec, references, the circuit annotation) is written at once; a verdict
that routing obeys (Ready, the circuit's state) within ``VERDICT_GAP``; the rest of what probes
find at most once per the provider's interval, whatever the failure pattern; the figures that
change on every probe (latency, times, success rate, the failure count) at most once every
``REFRESH_SECONDS``. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from signalbox_api.conditions import ConditionType, Reason

REFRESH_SECONDS = 60.0
VERDICT_GAP = 1.0  # a provider whose verdict flips on every probe is written once a second

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


def verdict_changed(written: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether what routing obeys changed: the Ready condition or the circuit's state."""
    ready = ConditionType.READY
    if _conds(written).get(ready, (None,))[0] != _conds(new).get(ready, (None,))[0]:
        return True
    return (written.get("circuit") or {}).get("state") != (new.get("circuit") or {}).get("state")


def gap(written: dict[str, Any], new: dict[str, Any], min_gap: float) -> float:
    """Seconds that must pass since the last write before ``new`` replaces ``written``: none for
    what people changed, ``VERDICT_GAP`` (or less) for a verdict, ``min_gap`` (the provider's
    interval) for other findings, ``REFRESH_SECONDS`` for mere figures."""
    if urgent(written, new):
        return 0.0
    if verdict_changed(written, new):
        return min(min_gap, VERDICT_GAP)
    if comparable(written) != comparable(new):
        return min_gap
    return REFRESH_SECONDS


def should_write(
    written: dict[str, Any] | None,
    new: dict[str, Any],
    written_at: datetime | None,
    now: datetime,
    min_gap: float = 0.0,
) -> bool:
    """Whether ``new`` is worth a write now (see ``gap``)."""
    if written is None or written_at is None:
        return True
    if new == written:
        return False
    return (now - written_at).total_seconds() >= gap(written, new, min_gap)
