"""Rate limits shared by three router processes through one real Redis (``--redis-url``).

A client sends round robin to the three routers, as a Service would, faster than the limits
allow, for a bounded run; the fake provider's own log says what it received. Per-minute
budgets start full, so within one run that is shorter than a minute the provider may receive at
most one budget (SlidingWindow) or the burst plus the refill (TokenBucket): were each router
counting for itself, it would receive three times that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from signalbox_fake import FakeProvider, Flavor
from signalbox_router.limits.leases import LIFE
from tests.support.redis_server import RedisServer
from tests.support.round_robin import hammer
from tests.support.router import (
    Doc,
    RouterProcess,
    policy,
    provider,
    running_fakes,
)

MODEL = "gpt-4o-mini"
REPLICAS = 3
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "1s"}
LIMITS: dict[str, dict[str, Any]] = {
    "sliding": {"requestsPerMinute": 60, "algorithm": "SlidingWindow"},
    "bucket": {"requestsPerMinute": 60},  # TokenBucket, burst 1: one a second
    "tokens": {"tokensPerMinute": 3000, "algorithm": "SlidingWindow"},
    "steady": {"requestsPerMinute": 1_000_000, "algorithm": "SlidingWindow"},  # 5 s leases
}


@dataclass
class World:
    redis: RedisServer
    routers: list[RouterProcess]
    fakes: dict[str, FakeProvider]

    def served(self, scenario: str) -> int:
        return sum(1 for s in self.fakes[scenario].seen if s.path.endswith("/chat/completions"))


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    docs: list[Doc] = []
    for name, limit in LIMITS.items():
        docs.append(provider(name, "OpenAICompatible", fakes[name].base_url, rateLimit=limit))
        docs.append(policy(name, [name], [{"name": name, "model": MODEL}], failover=FAILOVER))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("shared-limits")
    redis = RedisServer(base / "redis").start()
    fakes = {name: FakeProvider(name, Flavor.OPENAI, [MODEL]) for name in LIMITS}
    routers = [
        RouterProcess(base / f"router-{i}", base / f"router-{i}.log", ("--redis-url", redis.url))
        for i in range(REPLICAS)
    ]
    try:
        with running_fakes(*fakes.values()):
            fakes["tokens"].set_faults(reply_words=30)
            for router in routers:
                router.write(_docs(fakes))
                router.start()
            yield World(redis, routers, fakes)
    finally:
        for router in routers:
            router.stop()
        redis.stop()


async def test_three_routers_share_one_sliding_window(world: World) -> None:
    answers = await hammer(world.routers, "sliding", seconds=5)
    served = world.served("sliding")
    assert served == len(answers)
    assert served <= 63, f"the provider received {served} requests in one window of 60"
    assert served >= 45, f"only {served} of a budget of 60 were used: leases were lost"


async def test_three_routers_share_one_token_bucket(world: World) -> None:
    started = time.monotonic()
    await hammer(world.routers, "bucket", seconds=5)
    elapsed = time.monotonic() - started
    served = world.served("bucket")
    # One burst plus one a second, plus a lease life of 2 s (a lease may be spent that late).
    allowed = 1 + elapsed + 2
    assert served <= allowed + 1, f"{served} requests in {elapsed:.1f}s at one a second"
    assert served >= 3


async def test_three_routers_share_a_token_budget(world: World) -> None:
    answers = await hammer(world.routers, "tokens", seconds=6, max_tokens=40)
    spent = sum(a.usage.total_tokens for a in answers if a.usage is not None)
    assert len(answers) == world.served("tokens")
    assert spent <= 1.05 * 3000, f"the provider served {spent} tokens of a 3000 budget"
    assert spent >= 0.6 * 3000, f"only {spent} tokens of 3000 were served"


async def test_at_steady_load_few_requests_touch_redis(world: World) -> None:
    await hammer(world.routers, "steady", seconds=2, parallel=6)  # batches grow to the demand
    before = sum(_lease_trips(r) for r in world.routers)
    started = time.monotonic()
    answers = await hammer(world.routers, "steady", seconds=20, parallel=6, until=300)
    elapsed = time.monotonic() - started
    trips = sum(_lease_trips(r) for r in world.routers) - before
    assert len(answers) >= 100  # however busy this machine is
    # A lease lives LIFE seconds, so a busy replica renews about that often whatever its load:
    # on a slow machine those renewals, not the requests, set the count.
    renewals = len(world.routers) * (elapsed / LIFE + 1)
    allowed = 0.05 * len(answers) + renewals
    assert trips <= allowed, f"{trips} round trips for {len(answers)} requests in {elapsed:.1f}s"


def test_readyz_names_the_shared_mode_and_the_live_replicas(world: World) -> None:
    # Replicas are counted by heartbeat: on a machine busy enough for a round trip to pass 50 ms,
    # a replica falls back for a moment and drops out of the count until it beats again.
    deadline = time.monotonic() + 15
    while True:
        shared = world.routers[0].get("/readyz").json()["shared_budgets"]
        if shared["mode"] == "shared" and shared["replicas"] == REPLICAS:
            break
        assert time.monotonic() < deadline, shared
        time.sleep(0.2)
    assert world.routers[0].metric("signalbox_router_shared_budget_mode") == 1.0


def _lease_trips(router: RouterProcess) -> float:
    return router.metric("signalbox_router_shared_budget_round_trips_total", purpose="lease")
