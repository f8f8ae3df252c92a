"""Provider limits shared by every router replica through Redis (``--redis-url``).

Each replica's limiters spend from :class:`leases.LeasedWindow` leases; this module owns the
one background task that talks to Redis for them: it sends the windows' asks and the unspent
rest of expired leases in one pipelined round trip, beats a heartbeat that counts the live
replicas, and watches Redis. A round trip that fails or takes longer than ``timeout`` (50 ms)
puts every window on its fallback share (limit / live replicas) at once, with a log line, the
``signalbox_router_shared_budget_mode`` gauge and a line in ``/readyz``; a probe every
``probe_every`` seconds brings them back. The request path itself never awaits Redis.
The limiters themselves are built by :mod:`shared_limiters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import prometheus_client as prom
import redis.asyncio
import redis.exceptions

from signalbox_api.provider import RateLimit
from signalbox_router.limits import budget_scripts, leases, limiters, shared_limiters

if TYPE_CHECKING:
    from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
_FAILURES = (redis.exceptions.RedisError, OSError, TimeoutError)


class SharedBudgets:
    """Builds limiters whose budgets are shared, and keeps them supplied; one per process."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        registry: prom.CollectorRegistry,
        *,
        prefix: str = "signalbox",
        replicas: int | None = None,
        timeout: float = 0.05,
        tick: float = 0.1,
        heartbeat_every: float = 0.5,
        probe_every: float = 0.5,
    ) -> None:
        self.client, self.prefix = client, prefix
        self.fixed_replicas = replicas
        self.replicas = replicas or 2  # live replicas, this one included (2 until counted)
        self.timeout, self.tick = timeout, tick
        self.heartbeat_every, self.probe_every = heartbeat_every, probe_every
        self.replica_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.shared = True
        self.since = time.monotonic()
        self.reason = ""
        self._providers: dict[str, shared_limiters.SharedLimiter] = {}
        self._wake = asyncio.Event()
        self._sha: dict[str, str] = {}
        self._run_id = ""  # Redis's, to tell a restart (which forgets budgets) from a pause
        self.round_trips = prom.Counter(
            "signalbox_router_shared_budget_round_trips_total",
            "Round trips to Redis for shared budgets, by purpose (lease, heartbeat, probe).",
            ["purpose"],
            registry=registry,
        )
        self.mode = prom.Gauge(
            "signalbox_router_shared_budget_mode",
            "1 while limits are shared through Redis, 0 while this replica uses its own share.",
            registry=registry,
        )
        self.mode.set(1)

    def limiter(self, name: str, spec: RateLimit | None) -> limiters.ProviderLimiter:
        """A limiter for provider ``name`` spending shared budgets (plain when ``spec`` is None)."""
        if spec is None:
            self._providers.pop(name, None)
            return limiters.ProviderLimiter()
        key = f"{self.prefix}:budget:{name}"
        shared = self._providers[name] = shared_limiters.build(
            key, spec, self.replicas, self._wake.set
        )
        if not self.shared:
            for budget in shared.budgets:
                budget.window.go_alone(time.monotonic())
        return shared.limiter

    def status(self) -> dict[str, object]:
        """For ``/readyz``: the mode, since when, why, and the live replicas counted."""
        body: dict[str, object] = {
            "mode": "shared" if self.shared else "fallback",
            "replicas": self.replicas,
            "since_seconds": round(time.monotonic() - self.since, 1),
        }
        if self.reason:
            body["reason"] = self.reason
        return body

    # -- the background task -------------------------------------------------------------

    async def run(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Supply the windows until cancelled."""
        next_beat = 0.0
        try:
            while True:
                self._wake.clear()
                now = clock()
                if not self.shared:
                    if now >= next_beat:
                        next_beat = now + self.probe_every
                        await self._probe()
                elif now >= next_beat:
                    next_beat = now + self.heartbeat_every
                    await self._round_trip(now, heartbeat=True)
                else:
                    await self._round_trip(now, heartbeat=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick)
        finally:
            await self._leave()

    async def _round_trip(self, now: float, *, heartbeat: bool) -> None:
        if not self._sha:
            try:
                await self._load()
            except _FAILURES as exc:
                self._go_alone(exc)
                return
        asks: list[tuple[shared_limiters.Budget, leases.Ask]] = []
        pipe = self.client.pipeline(transaction=False)
        budgets = [b for shared in self._providers.values() for b in shared.budgets]
        for budget in budgets:
            ask = budget.window.ask(now)
            if ask is not None:
                asks.append((budget, ask))
                life = budget.window.life
                args = [repr(ask.want), repr(ask.need), repr(life), repr(ask.charge)]
                self._call(pipe, "lease", budget.key, [*budget.args(), *args])
        for budget in budgets if asks or heartbeat else ():  # returns ride along
            for stamp, amount in budget.window.take_returns():
                self._call(pipe, "give_back", budget.key, [*budget.args(), stamp, repr(amount)])
        if heartbeat:
            self._call(pipe, "heartbeat", f"{self.prefix}:replicas", [self.replica_id, "10"])
        if not len(pipe):
            return
        self.round_trips.labels("heartbeat" if heartbeat and not asks else "lease").inc()
        try:
            async with asyncio.timeout(self.timeout):
                answers = list(await pipe.execute(raise_on_error=True))
        except redis.exceptions.NoScriptError:  # Redis restarted and forgot them: load again
            for budget, ask in asks:
                budget.window.unanswered(ask)
            self._sha.clear()
            return
        except _FAILURES as exc:
            for budget, ask in asks:
                budget.window.unanswered(ask)
            self._go_alone(exc)
            return
        granted = iter(a for a in answers if isinstance(a, list))
        for budget, ask in asks:
            raw = [x.decode() if isinstance(x, bytes) else str(x) for x in next(granted)]
            grant = leases.Grant(float(raw[0]), raw[1], float(raw[2]), float(raw[3]))
            budget.window.granted(now, ask, grant)
        if heartbeat and isinstance(answers[-1], int):
            self._count(int(answers[-1]))

    def _call(
        self, pipe: redis.asyncio.client.Pipeline, script: str, key: str, args: list[str]
    ) -> None:
        pipe.evalsha(self._sha.get(script, ""), 1, key, *args)

    async def _load(self) -> None:
        scripts = {
            "lease": budget_scripts.LEASE,
            "give_back": budget_scripts.GIVE_BACK,
            "heartbeat": budget_scripts.HEARTBEAT,
        }
        async with asyncio.timeout(self.timeout * 4):
            self._run_id = str((await self.client.info("server")).get("run_id", ""))
            for name, text in scripts.items():
                self._sha[name] = str(await self.client.script_load(text))

    def _count(self, live: int) -> None:
        live = self.fixed_replicas or max(1, live)
        if live != self.replicas:
            self.replicas = live
            for shared in self._providers.values():
                # While alone, the share in use stays until Redis is back.
                shared_limiters.resize(shared, live, fallbacks=self.shared)
            log.info("shared budgets: %d live replicas", live)

    def _go_alone(self, exc: BaseException) -> None:
        if self.shared:
            self.shared, self.since = False, time.monotonic()
            self.reason = f"Redis unreachable or slower than {self.timeout * 1000:.0f} ms"
            self.mode.set(0)
            log.warning(
                "shared budgets: %s (%s); each limit falls back to this replica's share (1/%d)",
                self.reason,
                type(exc).__name__,
                self.replicas,
            )
            for shared in self._providers.values():
                for budget in shared.budgets:
                    budget.window.go_alone(time.monotonic())

    async def _probe(self) -> None:
        self.round_trips.labels("probe").inc()
        try:
            async with asyncio.timeout(self.timeout):
                run_id = str((await self.client.info("server")).get("run_id", ""))
        except _FAILURES:
            return
        forgot, self._run_id = run_id != self._run_id, run_id
        self.shared, self.since, self.reason = True, time.monotonic(), ""
        self.mode.set(1)
        log.warning("shared budgets: Redis answers again; limits are shared once more")
        for shared in self._providers.values():
            for budget in shared.budgets:
                budget.window.rejoin(time.monotonic(), forgot=forgot)

    async def _leave(self) -> None:
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self.client.zrem(f"{self.prefix}:replicas", self.replica_id)
        except (*_FAILURES, asyncio.CancelledError):
            pass


def from_url(url: str, state: RouterState, *, prefix: str, replicas: int | None) -> SharedBudgets:
    """Shared budgets over the Redis at ``url``, wired into ``state`` (its limiters, /readyz)."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0, health_check_interval=0)
    budgets = SharedBudgets(client, state.meter.registry, prefix=prefix, replicas=replicas)
    state.make_limiter = budgets.limiter
    state.reports["shared_budgets"] = budgets.status
    return budgets
