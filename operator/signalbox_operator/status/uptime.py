"""Success rate and uptime of one provider over the last hour and the last day.

The recent-probe success rate (the last twenty probes) reacts fast but forgets fast; people
comparing providers ask how one did over an hour or a day. Probes are folded into buckets: one
per minute for the last hour and one per hour for the last day, so a provider's history holds
at most 86 buckets whatever its interval (a day of minutes, at thousands of providers, would
hold gigabytes). The hour's figures start on a minute, the day's on an hour. Each gap between
two probes counts as up or down by the earlier probe's result: an open circuit, which sends no
probes, counts as down until a probe succeeds. Gaps longer than ``MAX_GAP`` (the operator was
away) count as unobserved. Pure, with the clock passed in; the history starts when this
operator process first probes the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

HOUR = 3600.0
DAY = 86_400.0
MAX_GAP = 3600.0
_MINUTE = 60
_HOUR = 3600


@dataclass(slots=True)
class _Bucket:
    probes: int = 0
    successes: int = 0
    up: float = 0.0  # seconds observed up
    seen: float = 0.0  # seconds observed at all

    def add(self, ok: bool, gap: float, was_up: bool) -> None:
        self.probes += 1
        self.successes += ok
        self.seen += gap
        self.up += gap if was_up else 0.0


@dataclass(frozen=True)
class Summary:
    """One window's figures; None where the window holds nothing to judge by."""

    success_rate: float | None
    uptime: float | None
    probes: int


@dataclass(slots=True)
class History:
    """Buckets of probe results: per minute for the newest hour, per hour for the newest day.
    Buckets are kept in time order (dicts keep insertion order), so the oldest go first."""

    _minutes: dict[int, _Bucket] = field(default_factory=dict)
    _hours: dict[int, _Bucket] = field(default_factory=dict)
    _last: tuple[float, bool] | None = None  # time and result of the latest probe

    def record(self, at: datetime, ok: bool) -> None:
        t = at.timestamp()
        gap, was_up = 0.0, False
        if self._last is not None:
            gap = t - self._last[0]
            was_up = self._last[1]
            if not 0 < gap <= MAX_GAP:
                gap = 0.0
        for buckets, size, keep in ((self._minutes, _MINUTE, HOUR), (self._hours, _HOUR, DAY)):
            slot = int(t // size)
            bucket = buckets.get(slot)
            if bucket is None:
                bucket = buckets[slot] = _Bucket()
            bucket.add(ok, gap, was_up)
            oldest = int((t - keep) // size)
            while buckets:
                first = next(iter(buckets))
                if first >= oldest:
                    break
                del buckets[first]
        if self._last is None or t >= self._last[0]:
            self._last = (t, ok)

    def summary(self, now: datetime, window: float) -> Summary:
        """Figures over the ``window`` seconds up to ``now``, the time since the latest probe
        included (counted by that probe's result)."""
        t = now.timestamp()
        buckets, size = (self._minutes, _MINUTE) if window <= HOUR else (self._hours, _HOUR)
        first = int((t - window) // size)
        probes = successes = 0
        up = seen = 0.0
        for slot, b in buckets.items():
            if slot >= first:
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
