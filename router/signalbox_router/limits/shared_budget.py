"""Provider limits shared by every router replica through Redis (``--redis-url``).

Each replica's limiters spend from :class:`leases.LeasedWindow` leases; this module owns the
one background task that talks to Redis for them: it sends the windows' asks and the unspent
rest of expired leases in one pipelined round trip, beats a heartbeat that counts the live
replicas, and watches Redis. A round trip that fails or takes longer than ``timeout`` (50 ms)
puts every window on its fallback share (limit / live replicas) at once, with a log line, the
``signalbox_router_shared_budget_mode`` gauge and a line in ``/readyz`` that says why (slow or
gone, credentials refused, out of memory); a probe every ``probe_every`` seconds, itself a
heartbeat (a write), brings them back. The request path itself never awaits Redis.

The fleet keeps to one budget whatever Redis does, within the leases out at the moment:

- Redis gone: each replica's share is charged with its part of what the whole fleet had used
  (``leases``), not only its own spending, so uneven spending before brings no burst after.
- Redis lost its data (``FLUSHALL``, a restart, eviction): the generation in Redis changed
  (``budget_scripts``); every replica charges what it spent in the last minute, and nothing is
  leased until all had the time to (``budget_scripts.SETTLE``).
- A replica that never reached Redis assumes ``expected`` replicas (the chart passes its
  replica count) until the heartbeat counts them.
- Out of memory: the response cache's entries are dropped first (``make_room``), and until
  writes work again the replica stays on its share rather than flapping.

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
from collections.abc import Awaitable, Callable
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


UNCOUNTED = 8  # replicas assumed until counted by heartbeat (``--redis-expected-replicas``)
COUNT_TTL = 10.0  # seconds a replica's heartbeat counts it live


class SharedBudgets:
    """Builds limiters whose budgets are shared, and keeps them supplied; one per process."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        registry: prom.CollectorRegistry,
        *,
        prefix: str = "signalbox",
        replicas: int | None = None,
        expected: int = UNCOUNTED,
        timeout: float = 0.05,
        tick: float = 0.1,
        heartbeat_every: float = 0.5,
        probe_every: float = 0.5,
    ) -> None:
        self.client, self.prefix = client, prefix
        self.fixed_replicas = replicas
        # Live replicas, this one included: until counted, as many as expected (a replica that
        # starts while Redis is away must not assume it is alone).
        self.replicas = replicas or expected
        self.timeout, self.tick = timeout, tick
        self.heartbeat_every, self.probe_every = heartbeat_every, probe_every
        self.replica_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.shared = True
        self.since = time.monotonic()
        self.reason = ""
        self.generation = ""  # Redis's data as this replica knows it (see budget_scripts)
        self.make_room: Callable[[], Awaitable[None]] | None = None  # frees memory on OOM
        self._providers: dict[str, shared_limiters.SharedLimiter] = {}
        self._wake = asyncio.Event()
        self._sha: dict[str, str] = {}
        self._keep_count_until = 0.0  # after a loss, a low count is the heartbeats' loss too
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
        self.losses = prom.Counter(
            "signalbox_router_shared_budget_losses_total",
            "Times Redis was found to have lost the shared budgets (flushed, restarted empty, "
            "evicted); each time every replica charged what it spent in the last minute.",
            registry=registry,
        )
        self.mode.set(1)

    @property
    def generation_key(self) -> str:
        return f"{self.prefix}:generation"

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
                budget.window.go_alone(time.monotonic(), self.replicas)
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
                        await self._probe(now)
                elif now >= next_beat:
                    next_beat = now + self.heartbeat_every
                    await self._round_trip(now, heartbeat=True)
                else:
                    await self._round_trip(now, heartbeat=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick)
        finally:
            await self._leave()

    def _budgets(self) -> list[shared_limiters.Budget]:
        return [b for shared in self._providers.values() for b in shared.budgets]

    async def _round_trip(self, now: float, *, heartbeat: bool) -> bool:
        """One pipelined round trip: the windows' asks, the returns riding along, and with
        ``heartbeat`` the heartbeat and a look at every other budget's use. Whether it went."""
        if not self._sha:
            try:
                await self._load()
            except _FAILURES as exc:
                await self._go_alone(exc)
                return False
        asks: list[tuple[shared_limiters.Budget, leases.Ask]] = []
        pipe = self.client.pipeline(transaction=False)
        budgets = self._budgets()
        for budget in budgets:
            ask = budget.window.ask(now) if self.shared else None
            if ask is None and heartbeat:
                ask = _LOOK  # nothing wanted: what the fleet has used, and the generation
            if ask is not None:
                asks.append((budget, ask))
                life = budget.window.life
                args = [repr(ask.want), repr(ask.need), repr(life), repr(ask.charge)]
                self._call(pipe, "lease", budget.key, [*budget.args(), *args, self.generation])
        if self.shared:
            for budget in budgets if asks or heartbeat else ():  # returns ride along
                for stamp, amount in budget.window.take_returns():
                    back = [*budget.args(), stamp, repr(amount), self.generation]
                    self._call(pipe, "give_back", budget.key, back)
        if heartbeat:
            beat = [self.replica_id, repr(COUNT_TTL), self.generation]
            pipe.evalsha(
                self._sha.get("heartbeat", ""), 2, self._replicas_key, self.generation_key, *beat
            )
        if not len(pipe):
            return True
        self.round_trips.labels("heartbeat" if heartbeat and not asks else "lease").inc()
        try:
            async with asyncio.timeout(self.timeout):
                answers = list(await pipe.execute(raise_on_error=True))
        except redis.exceptions.NoScriptError:  # Redis restarted and forgot them: load again
            self._unanswered(asks)
            self._sha.clear()
            return False
        except _FAILURES as exc:
            self._unanswered(asks)
            await self._go_alone(exc)
            return False
        lease_answers = iter(a for a in answers[: len(asks)])
        seen = set()
        for budget, ask in asks:
            raw = [x.decode() if isinstance(x, bytes) else str(x) for x in next(lease_answers)]
            seen.add(raw[5])
            grant = leases.Grant(float(raw[0]), raw[1], float(raw[2]), float(raw[3]), float(raw[4]))
            if ask is _LOOK:
                budget.window.fleet_used = grant.used
            else:
                budget.window.granted(now, ask, grant)
        if heartbeat:
            count, generation = answers[-1]
            seen.add(generation.decode() if isinstance(generation, bytes) else str(generation))
            self._count(int(count), now)
        for generation in seen:
            self._follow(generation, now)
        return True

    def _unanswered(self, asks: list[tuple[shared_limiters.Budget, leases.Ask]]) -> None:
        for budget, ask in asks:
            if ask is not _LOOK:
                budget.window.unanswered(ask)

    def _follow(self, generation: str, now: float) -> None:
        """Redis said which generation of data it holds: a new one means it lost the budgets."""
        if generation == self.generation:
            return
        if self.generation:
            self.losses.inc()
            self._keep_count_until = now + COUNT_TTL
            log.warning(
                "shared budgets: Redis lost its data (flushed, restarted empty or evicted); "
                "charging what this replica spent in the last minute"
            )
            for budget in self._budgets():
                budget.window.lost(now)
            self._wake.set()
        self.generation = generation

    @property
    def _replicas_key(self) -> str:
        return f"{self.prefix}:replicas"

    def _call(
        self, pipe: redis.asyncio.client.Pipeline, script: str, key: str, args: list[str]
    ) -> None:
        pipe.evalsha(self._sha.get(script, ""), 2, key, self.generation_key, *args)

    async def _load(self) -> None:
        scripts = {
            "lease": budget_scripts.LEASE,
            "give_back": budget_scripts.GIVE_BACK,
            "heartbeat": budget_scripts.HEARTBEAT,
        }
        async with asyncio.timeout(self.timeout * 4):
            for name, text in scripts.items():
                self._sha[name] = str(await self.client.script_load(text))

    def _count(self, live: int, now: float) -> None:
        live = self.fixed_replicas or max(1, live)
        if live < self.replicas and now < self._keep_count_until:
            return  # the heartbeats were lost with the data: the others have not beaten yet
        if live != self.replicas:
            self.replicas = live
            for shared in self._providers.values():
                # While alone, the share in use stays until Redis is back.
                shared_limiters.resize(shared, live, fallbacks=self.shared)
            log.info("shared budgets: %d live replicas", live)

    async def _go_alone(self, exc: BaseException) -> None:
        reason = _why(exc, self.timeout)
        if isinstance(exc, redis.exceptions.OutOfMemoryError) and self.make_room is not None:
            with contextlib.suppress(*_FAILURES):
                await self.make_room()  # the response cache's entries go first
        if self.shared:
            self.shared, self.since = False, time.monotonic()
            self.mode.set(0)
            log.warning(
                "shared budgets: %s (%s); each limit falls back to this replica's share (1/%d)",
                reason,
                type(exc).__name__,
                self.replicas,
            )
            for budget in self._budgets():
                budget.window.go_alone(time.monotonic(), self.replicas)
        self.reason = reason

    async def _probe(self, now: float) -> None:
        """While alone: a heartbeat, a write like any lease, so a Redis that answers reads but
        refuses writes (out of memory) keeps this replica alone rather than flapping."""
        self.round_trips.labels("probe").inc()
        if not await self._round_trip(now, heartbeat=True):
            return
        self.shared, self.since, self.reason = True, time.monotonic(), ""
        self.mode.set(1)
        log.warning("shared budgets: Redis answers again; limits are shared once more")
        for budget in self._budgets():
            budget.window.rejoin()
        self._wake.set()

    async def _leave(self) -> None:
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self.client.zrem(self._replicas_key, self.replica_id)
        except (*_FAILURES, asyncio.CancelledError):
            pass


_LOOK = leases.Ask(want=0.0, need=0.0, charge=0.0)


def _why(exc: BaseException, timeout: float) -> str:
    """Why Redis cannot be used, in words an operator acts on (never a URL or password)."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return "Redis refused the credentials (a wrong password or user in --redis-url)"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "Redis is out of memory and refuses writes (maxmemory with noeviction)"
    if isinstance(exc, redis.exceptions.ResponseError):
        return f"Redis refused the budget scripts ({str(exc).split(' ', 1)[0]})"
    return f"Redis unreachable or slower than {timeout * 1000:.0f} ms"


def from_url(
    url: str,
    state: RouterState,
    *,
    prefix: str,
    replicas: int | None,
    expected: int = UNCOUNTED,
) -> SharedBudgets:
    """Shared budgets over the Redis at ``url``, wired into ``state`` (its limiters, /readyz)."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0, health_check_interval=0)
    budgets = SharedBudgets(
        client, state.meter.registry, prefix=prefix, replicas=replicas, expected=expected
    )
    state.make_limiter = budgets.limiter
    state.reports["shared_budgets"] = budgets.status
    return budgets
