"""The operator's own ``/healthz`` and ``/readyz``, served for the whole life of the process.

kopf's liveness endpoint exists only while kopf runs, that is only while this replica leads: a
standby served nothing and its liveness probe restarted it over and over. This endpoint runs
on the process's event loop from start to exit, so an answer at all means the loop turns.

- ``/healthz``: the campaign/lead loop is turning (a lease attempt ended lately, or the process
  is stopping a term within a bounded time) and, while leading, kopf is running. 200 as standby
  and as leader; 503 when kopf has died and no new campaign has begun, or the loop is stuck.
- ``/readyz``: leading with kopf running and the lease held, or standing by with a recent
  successful lease read; 503 with the reason otherwise (the API server has not answered).

``liveness`` and ``readiness`` are pure; ``Status`` is what the campaign loop writes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


class Phase(enum.Enum):
    STANDBY = "standing by"
    LEADING = "leading"
    STOPPING = "stopping work"


@dataclass(frozen=True)
class HealthLimits:
    stalled_after: float  # seconds without a lease attempt (or stuck stopping): not alive
    stale_after: float  # seconds without a successful lease read: a standby is not ready


@dataclass(frozen=True)
class Reading:
    """The loop's state at one instant; times are monotonic seconds."""

    phase: Phase
    phase_since: float
    last_attempt: float  # when the last lease attempt ended (or the loop started)
    last_read: float | None  # when the lease was last read successfully
    working: bool  # kopf's task is running
    lease_left: float  # seconds the lease is still held (<= 0: not held)


@dataclass(frozen=True)
class Answer:
    ok: bool
    phase: str
    reason: str

    def body(self) -> dict[str, object]:
        return {"ok": self.ok, "phase": self.phase, "reason": self.reason}


def liveness(r: Reading, now: float, limits: HealthLimits) -> Answer:
    def no(reason: str) -> Answer:
        return Answer(False, r.phase.value, reason)

    if r.phase == Phase.STOPPING:
        stuck = now - r.phase_since
        if stuck > limits.stalled_after:
            return no(f"stopping work for {stuck:.0f}s")
        return Answer(True, r.phase.value, "stopping work, then campaigning again")
    idle = now - r.last_attempt
    if idle > limits.stalled_after:
        return no(f"no lease attempt for {idle:.0f}s: the campaign loop is stuck")
    if r.phase == Phase.LEADING and not r.working:
        return no("leading, but the operator (kopf) is not running")
    return Answer(True, r.phase.value, "the campaign loop is running")


def readiness(r: Reading, now: float, limits: HealthLimits) -> Answer:
    live = liveness(r, now, limits)
    if not live.ok:
        return live

    def no(reason: str) -> Answer:
        return Answer(False, r.phase.value, reason)

    if r.phase == Phase.STOPPING:
        return no("stopping work (the lease was lost or the operator failed)")
    if r.phase == Phase.LEADING:
        if r.lease_left <= 0:
            return no("leading, but the lease has not been renewed in time")
        return Answer(True, r.phase.value, "leading")
    if r.last_read is None:
        return no("the API server has not answered a lease read yet")
    age = now - r.last_read
    if age > limits.stale_after:
        return no(f"the API server has not answered a lease read for {age:.0f}s")
    return Answer(True, r.phase.value, f"standing by; the lease was read {age:.0f}s ago")


class Attempts(Protocol):
    """What the endpoint reads of the elector (``leader.Elector``)."""

    @property
    def last_attempt(self) -> float | None: ...
    @property
    def last_read(self) -> float | None: ...


class Held(Protocol):
    """What the endpoint reads of a lease (a ``Fence``, or a sharded replica's elector)."""

    def remaining(self) -> float: ...


class Status:
    """What the campaign loop tells the endpoint. Without an elector (no leader election) the
    loop counts as attempting and reading at every instant."""

    def __init__(self, elector: Attempts | None, clock: Callable[[], float] = time.monotonic):
        self.elector = elector
        self._clock = clock
        self.started = clock()
        self.phase = Phase.STANDBY
        self.phase_since = self.started
        self.fence: Held | None = None
        self.working: Callable[[], bool] = lambda: False

    def now(self) -> float:
        return self._clock()

    def enter(self, phase: Phase, fence: Held | None = None) -> None:
        self.phase, self.phase_since = phase, self._clock()
        if fence is not None:
            self.fence = fence

    def reading(self) -> Reading:
        now = self._clock()
        attempt: float = now
        read: float | None = now
        if self.elector is not None:
            attempt = max(self.started, self.elector.last_attempt or self.started)
            read = self.elector.last_read
        return Reading(
            phase=self.phase,
            phase_since=self.phase_since,
            last_attempt=attempt,
            last_read=read,
            working=self.working(),
            lease_left=self.fence.remaining() if self.fence else 0.0,
        )


class Server:
    """``/healthz`` and ``/readyz`` on ``host:port``; start before campaigning, stop at exit."""

    def __init__(self, status: Status, limits: HealthLimits, host: str, port: int) -> None:
        self.status, self.limits = status, limits
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    def _handler(
        self, decide: Callable[[Reading, float, HealthLimits], Answer]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def answer(_request: web.Request) -> web.StreamResponse:
            verdict = decide(self.status.reading(), self.status.now(), self.limits)
            return web.json_response(verdict.body(), status=200 if verdict.ok else 503)

        return answer

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._handler(liveness))
        app.router.add_get("/readyz", self._handler(readiness))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
