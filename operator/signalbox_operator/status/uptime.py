"""Success rate and uptime of one provider over the last hour and the last day.

The recent-probe success rate (the last twenty probes) reacts fast but forgets fast; people
comparing providers ask how one did over an hour or a day. Probes are folded into one bucket per
minute (at most a day's worth, so memory stays bounded whatever the interval), and each gap
between two probes counts as up or down by the earlier probe's result: an open circuit, which
sends no probes, counts as down until a probe succeeds. Gaps longer than ``MAX_GAP`` (the
operator was away) count as unobserved. Pure, with the clock passed in; the history starts when
this operator process first probes the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

HOUR = 3600.0
DAY = 86_400.0
MAX_GAP = 3600.0
_MINUTE = 60


@dataclass
class _Bucket:
    probes: int = 0
    successes: int = 0
    up: float = 0.0  # seconds observed up
    seen: float = 0.0  # seconds observed at all


@dataclass(frozen=True)
class Summary:
    """One window's figures; None where the window holds nothing to judge by."""

    success_rate: float | None
    uptime: float | None
    probes: int


@dataclass
class History:
    """Per-minute buckets of probe results, the newest day only."""

    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _last: tuple[float, bool] | None = None  # time and result of the latest probe

    def record(self, at: datetime, ok: bool) -> None:
        t = at.timestamp()
        bucket = self._buckets.setdefault(int(t // _MINUTE), _Bucket())
        bucket.probes += 1
        bucket.successes += int(ok)
        if self._last is not None:
            gap = t - self._last[0]
            if 0 < gap <= MAX_GAP:
                bucket.seen += gap
                bucket.up += gap if self._last[1] else 0.0
        if self._last is None or t >= self._last[0]:
            self._last = (t, ok)
        oldest = int((t - DAY) // _MINUTE)
        for minute in [m for m in self._buckets if m < oldest]:
            del self._buckets[minute]

    def summary(self, now: datetime, window: float) -> Summary:
        """Figures over the ``window`` seconds up to ``now``, the time since the latest probe
        included (counted by that probe's result)."""
        t = now.timestamp()
        first = int((t - window) // _MINUTE)
        probes = successes = 0
        up = seen = 0.0
        for minute, b in self._buckets.items():
            if minute >= first:
                probes += b.probes
                successes += b.successes
                up += b.up
                seen += b.seen
        if self._last is not None:
            pending = min(t - self._last[0], MAX_GAP)
            if pending > 0:
                seen += pending
                up += pending if self._last[1] else 0.0
        return Summary(
            success_rate=successes / probes if probes else None,
            uptime=min(1.0, up / seen) if seen > 0 else None,
            probes=probes,
        )
