"""One budget whatever Redis does: three router processes share a provider's 60 requests a
minute (SlidingWindow) through one real ``redis-server``, and the fake provider's own log says
how many reached it within the minute while Redis is killed under uneven load, flushed,
restarted, absent at the start, behind a password the routers get wrong, or out of memory.

Each test has its own provider (its own budget in Redis) and stays well inside one minute, so
the provider may receive at most the limit plus ``TOLERANCE``: the leases out at the moment
something happens, which each router spends as it can.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from signalbox_fake import FakeProvider, Flavor
from tests.support.operator import wait_for
from tests.support.redis_server import RedisServer
from tests.support.round_robin import hammer
from tests.support.router import Doc, RouterProcess, policy, provider, running_fakes

MODEL = "gpt-4o-mini"
REPLICAS = 3
LIMIT = 60
TOLERANCE = 3
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "1s"}
SCENARIOS = ("uneven", "flushed", "restarted", "oom", "uncounted", "wrong-password")
CACHED = "cached"
MAX_ENTRIES = 20


@dataclass
class Fleet:
    server: RedisServer
    routers: list[RouterProcess]
    fakes: dict[str, FakeProvider]

    def served(self, scenario: str) -> int:
        return sum(1 for s in self.fakes[scenario].seen if s.path.endswith("/chat/completions"))

    def budgets(self) -> list[dict[str, Any]]:
        return [r.get("/readyz").json()["shared_budgets"] for r in self.routers]

    def modes(self) -> list[str]:
        return [b["mode"] for b in self.budgets()]

    def wait_mode(self, mode: str, timeout: float = 5) -> None:
        wait_for(lambda: self.modes() == [mode] * len(self.routers), timeout, f"{mode} mode")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)

    async def hammer(
        self, scenario: str, seconds: float, on: Sequence[int] = (0, 1, 2), until: int | None = None
    ) -> None:
        chosen = [self.routers[i] for i in on]
        await hammer(chosen, scenario, seconds=seconds, parallel=4, until=until)


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    limit = {"requestsPerMinute": LIMIT, "algorithm": "SlidingWindow"}
    docs: list[Doc] = []
    for name in SCENARIOS:
        docs.append(provider(name, "OpenAICompatible", fakes[name].base_url, rateLimit=limit))
        docs.append(policy(name, [name], [{"name": name, "model": MODEL}], failover=FAILOVER))
    docs.append(provider(CACHED, "OpenAICompatible", fakes[CACHED].base_url))
    cache = {"ttl": "10m", "maxEntries": MAX_ENTRIES}
    docs.append(policy(CACHED, [CACHED], [{"name": CACHED, "model": MODEL}], cache=cache))
    return docs


@contextmanager
def _fleet(
    base: Path, redis_server: RedisServer, url: str, *args: str, count: bool = True
) -> Iterator[Fleet]:
    """Three routers (``args`` more flags) in front of fresh fakes, Redis at ``url``; with
    ``count``, once they have counted each other."""
    fakes = {name: FakeProvider(name, Flavor.OPENAI, [MODEL]) for name in (*SCENARIOS, CACHED)}
    routers = [
        RouterProcess(base / f"router-{i}", base / f"router-{i}.log", ("--redis-url", url, *args))
        for i in range(REPLICAS)
    ]
    try:
        with running_fakes(*fakes.values()):
            fakes[CACHED].set_faults(reply_words=2000)
            for router in routers:
                router.write(_docs(fakes))
                router.start()
            fleet = Fleet(redis_server, routers, fakes)
            if count:
                wait_for(
                    lambda: all(b["replicas"] == REPLICAS for b in fleet.budgets()),
                    10,
                    "the routers to count each other",
                )
            yield fleet
    finally:
        for router in routers:
            router.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("one-budget")
    server = RedisServer(base / "redis").start()
    try:
        with _fleet(base, server, server.url) as fleet:
            yield fleet
    finally:
        server.stop()


def _within_the_limit(fleet: Fleet, scenario: str) -> None:
    served = fleet.served(scenario)
    assert served <= LIMIT + TOLERANCE, f"{served} requests reached the provider in a minute"


async def test_redis_killed_after_uneven_spending_brings_no_burst(fleet: Fleet) -> None:
    """One router spent most of the budget, the others little; then Redis dies. Each falls
    back to its part of what was left, not to a third of the whole limit."""
    await fleet.hammer("uneven", 10, on=(0,), until=45)
    await fleet.hammer("uneven", 5, on=(1,), until=5)
    await fleet.hammer("uneven", 5, on=(2,), until=5)
    assert fleet.served("uneven") >= 50
    fleet.server.stop()
    try:
        fleet.wait_mode("fallback", 3)
        await fleet.hammer("uneven", 3)
        _within_the_limit(fleet, "uneven")
    finally:
        fleet.server.start()
    fleet.wait_mode("shared")


async def test_a_flushed_redis_is_noticed_and_charged(fleet: Fleet) -> None:
    await fleet.hammer("flushed", 10, until=50)
    before = [r.metric("signalbox_router_shared_budget_losses_total") for r in fleet.routers]
    fleet.client().flushall()
    await fleet.hammer("flushed", 4)
    _within_the_limit(fleet, "flushed")
    after = [r.metric("signalbox_router_shared_budget_losses_total") for r in fleet.routers]
    assert all(a == b + 1 for a, b in zip(after, before, strict=True)), (before, after)
    assert fleet.modes() == ["shared"] * REPLICAS
    assert all(b["replicas"] == REPLICAS for b in fleet.budgets()), "the count survived"


async def test_a_restarted_redis_brings_no_burst(fleet: Fleet) -> None:
    await fleet.hammer("restarted", 3)
    assert fleet.served("restarted") >= 45
    fleet.server.stop()
    fleet.wait_mode("fallback", 3)
    await fleet.hammer("restarted", 2)
    fleet.server.start()  # the same port, empty
    fleet.wait_mode("shared")
    await fleet.hammer("restarted", 3)
    _within_the_limit(fleet, "restarted")


def _cache_keys(fleet: Fleet) -> list[bytes]:
    return list(fleet.client().scan_iter(match=b"signalbox:cache:*"))


def _ask_cached(fleet: Fleet, n: int) -> None:
    client = openai.OpenAI(base_url=fleet.routers[0].base_url, api_key="unused", max_retries=0)
    for i in range(n):
        prompt = [{"role": "user", "content": f"prompt number {i}"}]
        client.chat.completions.create(model=CACHED, messages=prompt, temperature=0)


def test_cached_answers_in_redis_are_bounded_by_max_entries(fleet: Fleet) -> None:
    _ask_cached(fleet, 3 * MAX_ENTRIES)
    wait_for(lambda: len(_cache_keys(fleet)) >= MAX_ENTRIES, 5, "the cache's writes")
    time.sleep(0.3)  # the last writes land
    assert len(_cache_keys(fleet)) == MAX_ENTRIES


async def test_out_of_memory_drops_the_cache_first_then_holds_without_flapping(
    fleet: Fleet,
) -> None:
    client = fleet.client()
    _ask_cached(fleet, MAX_ENTRIES)  # about 10 kB each
    wait_for(lambda: len(_cache_keys(fleet)) == MAX_ENTRIES, 5, "the cache's writes")
    await fleet.hammer("oom", 10, until=40)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    try:
        # Over the limit by less than the cache holds: dropping the cache makes room.
        client.config_set("maxmemory", str(used - 50_000))
        wait_for(lambda: not _cache_keys(fleet), 5, "the cache's entries dropped")
        fleet.wait_mode("shared", 5)
        assert any("dropped" in r.log() for r in fleet.routers)
        # Far over the limit: nothing helps; every router stays on its share, without flapping.
        client.config_set("maxmemory", "0")
        client.set("someone-else", b"x" * 300_000)
        client.config_set("maxmemory", str(used - 200_000))
        fleet.wait_mode("fallback", 5)
        falls = [r.log().count("falls back") for r in fleet.routers]
        await fleet.hammer("oom", 3)
        assert fleet.modes() == ["fallback"] * REPLICAS
        assert [r.log().count("falls back") for r in fleet.routers] == falls, "no flapping"
        for budgets in fleet.budgets():
            assert "out of memory" in budgets["reason"]
        _within_the_limit(fleet, "oom")
    finally:
        client.config_set("maxmemory", "0")
        client.delete("someone-else")
    fleet.wait_mode("shared")


@pytest.fixture(scope="module")
def absent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Routers that start while their Redis is not there yet (as the chart runs them: told
    the replica count they are deployed with)."""
    base = tmp_path_factory.mktemp("absent")
    server = RedisServer(base / "redis")
    args = ("--redis-expected-replicas", str(REPLICAS))
    try:
        with _fleet(base, server, server.url, *args, count=False) as fleet:
            yield fleet
    finally:
        server.stop()


async def test_routers_that_start_without_redis_keep_to_one_budget(absent: Fleet) -> None:
    absent.wait_mode("fallback", 5)
    assert all("unreachable" in b["reason"] for b in absent.budgets())
    assert all(b["replicas"] == REPLICAS for b in absent.budgets()), "assumed, not 2"
    await absent.hammer("uncounted", 3)
    _within_the_limit(absent, "uncounted")
    absent.server.start()
    absent.wait_mode("shared", 10)
    await absent.hammer("uncounted", 3)
    _within_the_limit(absent, "uncounted")


@pytest.fixture(scope="module")
def locked_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("locked-out")
    server = RedisServer(base / "redis", extra=("--requirepass", "the-right-password")).start()
    url = f"redis://:the-wrong-password@127.0.0.1:{server.port}/0"
    try:
        with _fleet(base, server, url, count=False) as fleet:
            yield fleet
    finally:
        server.stop()


async def test_a_wrong_password_is_reported_as_such_and_keeps_to_one_budget(
    locked_out: Fleet,
) -> None:
    locked_out.wait_mode("fallback", 5)
    for budgets, router in zip(locked_out.budgets(), locked_out.routers, strict=True):
        assert "credentials" in budgets["reason"], budgets
        assert "the-wrong-password" not in router.log()
        assert "the-wrong-password" not in str(router.get("/readyz").json())
    await locked_out.hammer("wrong-password", 3)
    _within_the_limit(locked_out, "wrong-password")
