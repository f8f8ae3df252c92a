"""Shared limits when Redis is slow or gone: every router falls back to its own share of each
limit at once, says so (``/readyz``, a metric, a log line), keeps answering, and shares again
when Redis is back, without a burst above the limit. Two router processes, one real Redis that
the tests pause (slow) and restart (gone, then back empty).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.operator import wait_for
from tests.support.redis_server import RedisServer
from tests.support.round_robin import hammer
from tests.support.router import Doc, RouterProcess, policy, provider, running_fakes

MODEL = "gpt-4o-mini"
REPLICAS = 2
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "1s"}
LIMITS: dict[str, dict[str, Any]] = {
    "sliding": {"requestsPerMinute": 60, "algorithm": "SlidingWindow"},
    "roomy": {"requestsPerMinute": 100_000},
}


@dataclass
class World:
    redis: RedisServer
    routers: list[RouterProcess]
    fakes: dict[str, FakeProvider]

    def served(self, scenario: str) -> int:
        return sum(1 for s in self.fakes[scenario].seen if s.path.endswith("/chat/completions"))

    def modes(self) -> list[str]:
        return [r.get("/readyz").json()["shared_budgets"]["mode"] for r in self.routers]


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    docs: list[Doc] = []
    for name, limit in LIMITS.items():
        docs.append(provider(name, "OpenAICompatible", fakes[name].base_url, rateLimit=limit))
        docs.append(policy(name, [name], [{"name": name, "model": MODEL}], failover=FAILOVER))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("shared-fallback")
    redis = RedisServer(base / "redis").start()
    fakes = {name: FakeProvider(name, Flavor.OPENAI, [MODEL]) for name in LIMITS}
    routers = [
        RouterProcess(base / f"router-{i}", base / f"router-{i}.log", ("--redis-url", redis.url))
        for i in range(REPLICAS)
    ]
    try:
        with running_fakes(*fakes.values()):
            for router in routers:
                router.write(_docs(fakes))
                router.start()
            wait_for(
                lambda: all(
                    r.get("/readyz").json()["shared_budgets"]["replicas"] == REPLICAS
                    for r in routers
                ),
                10,
                "the routers to count each other",
            )
            yield World(redis, routers, fakes)
    finally:
        for router in routers:
            router.stop()
        redis.stop()


def _chat(router: RouterProcess, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return router.post("/v1/chat/completions", json=body)


def test_a_slow_redis_never_blocks_a_request_and_each_router_falls_back(world: World) -> None:
    assert world.modes() == ["shared"] * REPLICAS
    world.redis.pause()
    try:
        paused = time.monotonic()
        for router in world.routers:
            started = time.monotonic()
            assert _chat(router, "roomy").status_code == 200
            assert time.monotonic() - started < 1.0  # generous: Redis never answers at all
        wait_for(lambda: world.modes() == ["fallback"] * REPLICAS, 3, "fallback mode")
        assert time.monotonic() - paused < 1.5  # within a second, plus this test's polling
        for router in world.routers:
            body = router.get("/readyz").json()
            assert body["ready"] is True  # degraded, still serving
            assert "50 ms" in body["shared_budgets"]["reason"]
            assert router.metric("signalbox_router_shared_budget_mode") == 0.0
            assert "falls back to this replica's share (1/2)" in router.log()
            assert _chat(router, "roomy").status_code == 200
    finally:
        world.redis.resume()
    wait_for(lambda: world.modes() == ["shared"] * REPLICAS, 5, "shared mode again")
    for router in world.routers:
        assert router.metric("signalbox_router_shared_budget_mode") == 1.0
        assert "limits are shared once more" in router.log()
        assert redis_url_absent(router.log(), world.redis.url)


async def test_a_restarted_redis_brings_no_burst_above_the_limit(world: World) -> None:
    """Budget spent shared, then alone, then shared with a Redis that forgot it all: within
    the minute the provider still receives no more than the limit."""
    await hammer_all(world, seconds=3)
    shared = world.served("sliding")
    assert shared >= 45
    world.redis.stop()
    wait_for(lambda: world.modes() == ["fallback"] * REPLICAS, 3, "fallback mode")
    await hammer_all(world, seconds=2)
    world.redis.start()  # the same port, empty
    wait_for(lambda: world.modes() == ["shared"] * REPLICAS, 5, "shared mode again")
    await hammer_all(world, seconds=3)
    served = world.served("sliding")
    assert served <= 63, f"{served} requests reached the provider within a minute (limit 60)"


async def hammer_all(world: World, seconds: float) -> None:
    await hammer(world.routers, "sliding", seconds=seconds, parallel=4)


def redis_url_absent(log: str, url: str) -> bool:
    return url not in log
