"""A per-minute budget shared by router replicas, spent here from leases with no round trip.

With ``--redis-url`` a provider's ``rateLimit`` lives in Redis, where every replica takes
capacity in batches (a lease) and gives back what it did not spend. :class:`LeasedWindow` is the
local side: a :class:`limits.Window` that admits from the leases it holds, so the request path
never waits for Redis. When the leases run low it asks (through ``wake``) for more; the
background task in :mod:`shared_budget` sends the asks and hands the grants back here. A lease
may be spent only for ``life`` seconds from the moment it was asked for; Redis counts it as spent
until then, so no window there is fooled by a batch spent late. (A token bucket cannot record
that, so a lease spent late lets it pass ``life`` seconds more of its rate in a minute: its
leases are kept short.)

Without Redis (it is down or slow) the window falls back to its ``fallback``: a local window of
this replica's share of the limit, charged first with the larger of what this replica spent in
the last minute and its share of what the whole fleet had used when Redis last said
(``fleet_used``), so the fleet together spends no more than what was left of the limit, however
unevenly the replicas had spent it. Back in shared mode, what it spent alone is charged to
Redis, so a return brings no burst; when Redis lost its data (``lost``) every replica charges
all it spent in the last minute, so the new data holds the fleet's spending again.

Pure and single-threaded like :mod:`limits`: the clock is passed in; nothing here awaits.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from signalbox_router.limits.limiters import OVERSIZED_RETRY, Window

LIFE = 2.0  # seconds a lease may be spent, by default
POLL = 0.002  # the wait named to a request while more capacity is on its way
HEADROOM = 1.5  # a batch covers this many times the demand seen over one lease life
_EPSILON = 1e-9


@dataclass
class Lease:
    expires: float
    stamp: str  # where Redis recorded it, to give back what is left
    left: float


@dataclass(frozen=True)
class Ask:
    """What to ask Redis for: up to ``want``, at least ``need`` (or nothing), and a charge for
    what was spent beyond the leases (a late token count, or spending while Redis was away)."""

    want: float
    need: float
    charge: float


@dataclass(frozen=True)
class Grant:
    amount: float
    stamp: str
    life: float  # seconds, from the moment the ask was sent
    retry_after: float  # when nothing was granted: seconds until Redis may have enough
    used: float = 0.0  # what the whole fleet has used of the budget, as Redis counts it


class LeasedWindow(Window):
    """One shared budget (requests or tokens of one provider) as this replica sees it."""

    def __init__(self, limit: float, cap: float, fallback: Window, life: float = LIFE) -> None:
        self.limit, self.cap, self.fallback, self.life = float(limit), float(cap), fallback, life
        self.shared = True
        self.leases: deque[Lease] = deque()
        self.balance = 0.0  # what the leases hold, together
        self.debt = 0.0  # spent beyond the leases, to charge with the next ask
        self.need = 0.0  # the largest cost refused since the last grant
        self.retry_at = -math.inf  # Redis had nothing before then
        self.asking = False
        self.low_water = 0.0
        self.running_low = False  # the leases fell below low water: ask ahead
        self.spent = 0.0  # since the last ask, for the demand estimate
        self.asked_at = -math.inf
        self.returns: list[tuple[str, float]] = []  # (stamp, amount) to give back
        self.alone_spent = 0.0  # spent in fallback mode, charged on return
        self.recent = SpentLastMinute()  # spent by this replica lately, shared or alone
        self.fleet_used = 0.0  # the fleet's use of the budget when Redis last said
        self.wake: Callable[[], None] = _nothing

    def _expire(self, now: float) -> None:
        leases = self.leases
        while leases and leases[0].expires <= now:
            lease = leases.popleft()
            self.balance -= lease.left
            if lease.left > _EPSILON:
                self.returns.append((lease.stamp, lease.left))
        if not leases:
            self.balance = 0.0

    def wait(self, now: float, cost: float) -> float:
        if not self.shared:
            return self.fallback.wait(now, cost)
        if cost > self.limit:
            return OVERSIZED_RETRY
        if self.leases and self.leases[0].expires <= now:
            self._expire(now)
        if self.balance + _EPSILON >= cost:
            return 0.0
        if cost > self.need:
            self.need = cost
            self.wake()
        return max(POLL, self.retry_at - now)

    def adjust(self, now: float, delta: float) -> None:
        self.recent.add(now, delta)
        if not self.shared:
            self.fallback.adjust(now, delta)
            self.alone_spent += max(0.0, delta)
            return
        if self.leases and self.leases[0].expires <= now:
            self._expire(now)
        if delta > 0:
            self.spent += delta
            for lease in self.leases:
                taken = min(delta, lease.left)
                lease.left, self.balance, delta = (
                    lease.left - taken,
                    self.balance - taken,
                    delta - taken,
                )
                if delta <= 0:
                    break
            self.debt += max(0.0, delta)
            if self.balance < self.low_water and not self.running_low:
                self.running_low = True  # one wake per batch
                self.wake()
        elif delta < 0:  # a refund: pays debt first, then goes back to the newest lease
            refund = -delta
            paid = min(refund, self.debt)
            self.debt, refund = self.debt - paid, refund - paid
            if refund > 0 and self.leases:
                self.leases[-1].left += refund
                self.balance += refund

    def ask(self, now: float) -> Ask | None:
        """What to ask for now, if anything; marks the window as asking until answered."""
        self._expire(now)
        if not self.shared or self.asking:
            return None
        short = max(0.0, self.need - self.balance)
        low = self.running_low
        if short > 0 and now < self.retry_at:
            short = 0.0  # Redis said none before then; the waiting request is told so
        if short <= 0 and not low and self.debt <= 0:
            return None
        life = self.life
        elapsed = max(now - self.asked_at, life / 10)
        demand = self.spent / elapsed * life * HEADROOM if elapsed < 10 * life else 0.0
        need = math.ceil(short) if short > 0 else (1.0 if low else 0.0)
        want = max(need, min(self.cap, math.ceil(demand))) if (short > 0 or low) else 0.0
        self.asking, self.asked_at, self.spent, self.running_low = True, now, 0.0, False
        charge, self.debt = self.debt, 0.0
        return Ask(want=float(want), need=float(need), charge=charge)

    def granted(self, sent: float, ask: Ask, grant: Grant) -> None:
        """Redis answered the ask sent at ``sent`` (local clock)."""
        self.asking = False
        self.fleet_used = grant.used
        if grant.amount > 0:
            self.leases.append(Lease(sent + grant.life, grant.stamp, grant.amount))
            self.balance += grant.amount
            self.low_water = grant.amount / 2
            self.retry_at = -math.inf
        elif ask.need > 0:  # others' leases may come back sooner than Redis can know
            self.retry_at = sent + min(grant.retry_after, self.life)
        if grant.amount <= 0 or self.balance >= self.need:
            self.need = 0.0  # a request still waiting asks again when it next tries

    def unanswered(self, ask: Ask) -> None:
        """The ask got no answer: its charge is kept for the next one."""
        self.asking = False
        self.debt += ask.charge

    def take_returns(self) -> list[tuple[str, float]]:
        returns, self.returns = self.returns, []
        return returns

    def go_alone(self, now: float, replicas: int) -> None:
        """Redis is away: spend from the fallback share (the limit / ``replicas``), less the
        larger of what this replica spent in the last minute and its part of what the fleet
        had used; the leases held are lost."""
        self.fallback.adjust(now, max(self.recent.total(now), self.fleet_used / replicas))
        self.shared, self.asking = False, False
        self._drop_leases()
        self.alone_spent = 0.0

    def rejoin(self) -> None:
        """Redis is back: what was spent alone is charged first (up to a whole budget)."""
        if not self.shared:
            self.shared = True
            self.debt += min(self.alone_spent, self.limit)
            self.alone_spent = 0.0

    def lost(self, now: float) -> None:
        """Redis lost its data (a new generation): the leases held are of the old one, and all
        this replica spent in the last minute is charged to the new one (up to a budget)."""
        self._drop_leases()
        self.debt = min(self.recent.total(now), self.limit)  # what it spent alone included
        self.alone_spent = 0.0
        self.fleet_used = 0.0

    def _drop_leases(self) -> None:
        self.leases.clear()
        self.balance, self.need, self.retry_at, self.returns = 0.0, 0.0, -math.inf, []


class SpentLastMinute:
    """What was spent in about the last minute: one total per clock second, in a ring."""

    __slots__ = ("amounts", "seconds")

    def __init__(self) -> None:
        self.seconds = [-1] * 61
        self.amounts = [0.0] * 61

    def add(self, now: float, amount: float) -> None:
        second = int(now)
        i = second % 61
        if self.seconds[i] == second:
            self.amounts[i] += amount
        else:
            self.seconds[i], self.amounts[i] = second, amount

    def total(self, now: float) -> float:
        """The sum over the seconds of the last minute, the current one included."""
        since = int(now) - 60
        return max(
            0.0, sum(a for s, a in zip(self.seconds, self.amounts, strict=True) if s >= since)
        )


def _nothing() -> None:
    return None
