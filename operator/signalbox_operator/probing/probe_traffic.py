"""The operator's probe traffic, kept cheap for the providers and for the operator itself.

- **Identical probes are shared.** Providers whose probes would send the same requests (same
  type, endpoint, key, health check and declared models: ``http_probe.identity``) share one
  probe: while it is out, the others wait for its report, and a report is reused by identical
  probes that start within ``SHARE_SECONDS`` of its end. Three thousand providers on one
  endpoint cost that endpoint about one probe a second, not three thousand every interval.
- **Each host is probed at a bounded rate** (``PER_HOST_RATE`` probes a second, as a burst too),
  so providers with different keys on one host cannot burst it either.
- **A bounded number of probes are out at once** (``MAX_IN_FLIGHT``).

A probe that waits for its host's rate or a free slot waits before its own deadline starts, so
waiting never makes a provider look slow or unhealthy: the provider's next probe is simply
later (its interval stretches while the operator is busy). Who waits, and how long, is counted
(``signalbox_probe_waits_total``, ``signalbox_probes_shared_total``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from signalbox_operator.metrics import Metrics
from signalbox_operator.status.provider_status import ProbeReport

SHARE_SECONDS = 1.0
PER_HOST_RATE = 100.0
MAX_IN_FLIGHT = 256
MAX_HOSTS = 10_000  # hosts whose rate is kept; the longest unprobed is forgotten past it


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Flight:
    task: asyncio.Task[ProbeReport]
    waiters: int = 1


@dataclass
class ProbeTraffic:
    per_host: float = PER_HOST_RATE
    in_flight: int = MAX_IN_FLIGHT
    share_seconds: float = SHARE_SECONDS
    metrics: Metrics | None = None
    clock: Callable[[], float] = time.monotonic
    _slots: asyncio.Semaphore = field(init=False)
    _buckets: collections.OrderedDict[str, _Bucket] = field(default_factory=collections.OrderedDict)
    _flying: dict[Hashable, _Flight] = field(default_factory=dict)
    # Reports of the last ``share_seconds``, oldest first: (ended at, identity, report).
    _recent: collections.deque[tuple[float, Hashable, ProbeReport]] = field(
        default_factory=collections.deque
    )
    _by_identity: dict[Hashable, ProbeReport] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.in_flight)

    async def probe(
        self,
        identity: Hashable,
        host: str,
        run: Callable[[], Awaitable[ProbeReport]],
        *,
        fresh: bool = False,
        had: ProbeReport | None = None,
    ) -> ProbeReport:
        """The report of the probe ``run`` sends to ``host``, or of an identical one (same
        ``identity``) that is out or has just ended, never ``had`` (the asker's last report:
        a provider is not told the same thing twice). ``fresh``: a probe that began before now
        will not do (something the probe depends on has just changed)."""
        self._forget_old()
        recent = None if fresh else self._by_identity.get(identity)
        if recent is not None and recent is not had:
            self._count_shared()
            return recent
        flight = None if fresh else self._flying.get(identity)
        if flight is not None:
            self._count_shared()
            flight.waiters += 1
        else:
            task = asyncio.ensure_future(self._send(identity, host, run))
            flight = _Flight(task)
            if identity not in self._flying:
                self._flying[identity] = flight
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():  # nobody wants it any more
                flight.task.cancel()

    async def _send(
        self, identity: Hashable, host: str, run: Callable[[], Awaitable[ProbeReport]]
    ) -> ProbeReport:
        try:
            waited = await self._turn(host)
            if self._slots.locked():
                waited = True
            async with self._slots:
                report = await run()
            if waited and self.metrics is not None:
                self.metrics.probe_waits.inc()
            self._remember(identity, report)
            return report
        finally:
            flight = self._flying.get(identity)
            if flight is not None and flight.task is asyncio.current_task():
                del self._flying[identity]

    async def _turn(self, host: str) -> bool:
        """Wait until ``host`` may be probed again; whether that meant waiting."""
        bucket = self._bucket(host)
        waited = False
        while True:
            now = self.clock()
            bucket.tokens = min(self.per_host, bucket.tokens + (now - bucket.at) * self.per_host)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return waited
            waited = True
            await asyncio.sleep((1.0 - bucket.tokens) / self.per_host)

    def _bucket(self, host: str) -> _Bucket:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= MAX_HOSTS:
                self._buckets.popitem(last=False)
            bucket = self._buckets[host] = _Bucket(self.per_host, self.clock())
        else:
            self._buckets.move_to_end(host)
        return bucket

    def _count_shared(self) -> None:
        if self.metrics is not None:
            self.metrics.probes_shared.inc()

    def _remember(self, identity: Hashable, report: ProbeReport) -> None:
        if self.share_seconds <= 0:
            return
        self._recent.append((self.clock(), identity, report))
        self._by_identity[identity] = report

    def _forget_old(self) -> None:
        oldest = self.clock() - self.share_seconds
        recent = self._recent
        while recent and recent[0][0] < oldest:
            _, identity, report = recent.popleft()
            if self._by_identity.get(identity) is report:
                del self._by_identity[identity]
