"""Success rate and uptime of one provider over the last hour and the last day.

The recent-probe success rate (the last twenty probes) reacts fast but forgets fast; people
comparing providers ask how one did over an hour or a day. Probes are folded into buckets: one
per minute for the last hour and one per hour for the last day, 86 in one fixed array a
provider whatever its interval (a day of minute objects, at thousands of providers, would hold
gigabytes). The hour's figures start on a minute, the day's on an hour. Each gap between
two probes counts as up or down by the earlier probe's result: an open circuit, which sends no
probes, counts as down until a probe succeeds. Gaps longer than ``MAX_GAP`` (the operator was
away) count as unobserved. Pure, with the clock passed in; the history starts when this
operator process first probes the provider.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime

HOUR = 3600.0
DAY = 86_400.0
MAX_GAP = 3600.0
_MINUTE = 60
_HOUR = 3600


class _Ring:
    """``count`` buckets of ``size`` seconds each, in one flat array of doubles: the bucket of
    time slot ``n`` (``t // size``) lives at ``n % count``, five numbers: its slot, probes,
    successes, seconds up and seconds observed. A bucket holding another slot's numbers is
    stale: overwritten when its place comes round again, skipped when summed."""

    __slots__ = ("count", "size", "values")

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.values = array("d", [-1.0, 0.0, 0.0, 0.0, 0.0] * count)

    def add(self, t: float, ok: bool, gap: float, was_up: bool) -> None:
        slot = t // self.size
        i = int(slot % self.count) * 5
        v = self.values
        if v[i] > slot:
            return  # a late result whose place a newer slot already took
        if v[i] != slot:
            v[i], v[i + 1], v[i + 2], v[i + 3], v[i + 4] = slot, 0.0, 0.0, 0.0, 0.0
        v[i + 1] += 1.0
        v[i + 2] += 1.0 if ok else 0.0
        v[i + 3] += gap if was_up else 0.0
        v[i + 4] += gap

    def totals(self, first: float, last: float) -> tuple[int, int, float, float]:
        """Probes, successes, seconds up and seconds observed in slots ``first``..``last``."""
        v = self.values
        probes = successes = up = seen = 0.0
        for i in range(0, len(v), 5):
            if first <= v[i] <= last:
                probes += v[i + 1]
                successes += v[i + 2]
                up += v[i + 3]
                seen += v[i + 4]
        return int(probes), int(successes), up, seen


@dataclass(frozen=True)
class Summary:
    """One window's figures; None where the window holds nothing to judge by."""

    success_rate: float | None
    uptime: float | None
    probes: int


@dataclass(slots=True)
class History:
    """Probe results in buckets: per minute for the newest hour, per hour for the newest day,
    a fixed 3.5 KB a provider however long it runs."""

    _minutes: _Ring = field(default_factory=lambda: _Ring(61, _MINUTE))
    _hours: _Ring = field(default_factory=lambda: _Ring(25, _HOUR))
    _last: tuple[float, bool] | None = None  # time and result of the latest probe

    def record(self, at: datetime, ok: bool) -> None:
        t = at.timestamp()
        gap, was_up = 0.0, False
        if self._last is not None:
            gap = t - self._last[0]
            was_up = self._last[1]
            if not 0 < gap <= MAX_GAP:
                gap = 0.0
        self._minutes.add(t, ok, gap, was_up)
        self._hours.add(t, ok, gap, was_up)
        if self._last is None or t >= self._last[0]:
            self._last = (t, ok)

    def summary(self, now: datetime, window: float) -> Summary:
        """Figures over the ``window`` seconds up to ``now``, the time since the latest probe
        included (counted by that probe's result)."""
        t = now.timestamp()
        ring = self._minutes if window <= HOUR else self._hours
        probes, successes, up, seen = ring.totals((t - window) // ring.size, t // ring.size)
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
