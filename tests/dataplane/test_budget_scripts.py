"""The Lua behind shared budgets, run by a real Redis: many replicas asking at once never get
more than the limit, what is given back can be leased again, and each algorithm keeps its own
rules (a fixed window's lease ends with its minute; a bucket refills on Redis's clock); a Redis
that lost its data says so with a new generation and grants nothing while the replicas settle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio

from signalbox_router.limits import budget_scripts
from tests.support.redis_server import RedisServer

Answer = tuple[float, str, float, float]
GEN = "gen-under-test"  # the generation every helper call knows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("budget-scripts")).start()
    yield redis_server
    redis_server.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    c = redis.asyncio.Redis.from_url(server.url)
    await c.flushdb()
    await c.hset("gen", mapping={"id": GEN, "settle": "0"})  # settled long ago
    yield c
    await c.aclose()


async def lease(c: redis.asyncio.Redis, alg: str, *args: float, **kwargs: Any) -> Answer:
    """``lease_raw``'s first four answers, as numbers."""
    granted, stamp, life, retry, _, _ = await lease_raw(c, alg, *args, **kwargs)
    return float(granted), stamp, float(life), float(retry)


async def lease_raw(
    c: redis.asyncio.Redis,
    alg: str,
    limit: float,
    want: float,
    need: float = 1,
    *,
    capacity: float | None = None,
    charge: float = 0,
    generation: str = GEN,
) -> list[str]:
    """The script's whole answer: granted, stamp, life, retry, used, generation."""
    raw = await c.eval(
        budget_scripts.LEASE,
        2,
        f"b:{alg}",
        "gen",
        alg,
        limit,
        capacity if capacity is not None else limit,
        want,
        need,
        2.0,
        charge,
        generation,
    )
    return [x.decode() for x in raw]


async def give_back(
    c: redis.asyncio.Redis, alg: str, limit: float, stamp: str, n: float, generation: str = GEN
) -> None:
    await c.eval(
        budget_scripts.GIVE_BACK, 2, f"b:{alg}", "gen", alg, limit, limit, stamp, n, generation
    )


@pytest.mark.parametrize("alg", ["sw", "fw"])
async def test_replicas_asking_at_once_share_exactly_the_limit(
    client: redis.asyncio.Redis, alg: str
) -> None:
    answers = await asyncio.gather(*(lease(client, alg, 60, 7) for _ in range(20)))
    assert sum(a[0] for a in answers) == 60
    refused = await lease(client, alg, 60, 7)
    assert refused[0] == 0
    assert refused[3] > 0  # seconds until some of it comes back


async def test_what_a_sliding_lease_gives_back_can_be_leased_again(
    client: redis.asyncio.Redis,
) -> None:
    granted, stamp, life, _ = await lease(client, "sw", 10, 10)
    assert (granted, life) == (10, 2.0)
    assert (await lease(client, "sw", 10, 5))[0] == 0
    await give_back(client, "sw", 10, stamp, 4)
    assert (await lease(client, "sw", 10, 5))[0] == 4


async def test_a_sliding_refusal_names_when_the_oldest_lease_stops_counting(
    client: redis.asyncio.Redis,
) -> None:
    await lease(client, "sw", 10, 10)
    _, _, _, retry = await lease(client, "sw", 10, 1)
    assert 60 < retry <= 60 + 2.0 + 0.5  # a window after the lease's last possible use


async def test_a_fixed_window_lease_ends_with_its_minute(client: redis.asyncio.Redis) -> None:
    granted, stamp, life, _ = await lease(client, "fw", 100, 10)
    assert granted == 10
    assert 0 < life <= 2.0
    await give_back(client, "fw", 100, str(int(stamp) - 1), 10)  # an older minute: ignored
    granted, later, _, _ = await lease(client, "fw", 100, 1000, need=1)
    assert granted == (90 if later == stamp else 100)  # a new minute starts afresh


async def test_a_bucket_grants_its_level_and_refills_on_the_server_clock(
    client: redis.asyncio.Redis,
) -> None:
    # 600 a minute (10 a second), holding at most 10.
    assert (await lease(client, "tb", 600, 50, capacity=10))[0] == 10
    granted, _, _, retry = await lease(client, "tb", 600, 5, need=5, capacity=10)
    assert granted == 0
    assert 0 < retry <= 0.5
    await asyncio.sleep(0.6)
    assert (await lease(client, "tb", 600, 5, need=5, capacity=10))[0] == 5


async def test_a_charge_is_spent_before_anything_is_granted(client: redis.asyncio.Redis) -> None:
    assert (await lease(client, "sw", 100, 100, charge=70))[0] == 30
    assert (await lease(client, "fw", 100, 100, charge=95))[0] == 5


@pytest.mark.parametrize("alg", ["sw", "fw", "tb"])
async def test_every_answer_says_what_the_whole_fleet_has_used(
    client: redis.asyncio.Redis, alg: str
) -> None:
    await lease(client, alg, 60, 7)
    await lease(client, alg, 60, 5, charge=3)
    *_, used, generation = await lease_raw(client, alg, 60, 0, 0)  # a look, nothing wanted
    assert float(used) == pytest.approx(15, abs=0.1)  # the bucket refills a little meanwhile
    assert generation == GEN


async def test_a_redis_that_lost_its_data_starts_a_generation_and_settles(
    client: redis.asyncio.Redis,
) -> None:
    await lease(client, "sw", 60, 10)
    await client.flushall()
    granted, _, _, retry, used, generation = await lease_raw(client, "sw", 60, 10, charge=4)
    assert float(granted) == 0, "nothing is leased before every replica has charged"
    assert generation != GEN
    assert 0 < float(retry) <= budget_scripts.SETTLE
    assert float(used) == 4, "the charge is taken all the same"
    # A replica that knows the new generation is still held while it settles ...
    held = await lease_raw(client, "sw", 60, 10, charge=3, generation=generation)
    assert float(held[0]) == 0
    assert float(held[4]) == 7
    # ... and leases once it has: what was charged counts.
    await asyncio.sleep(budget_scripts.SETTLE)
    granted_after = await lease(client, "sw", 60, 100, generation=generation)
    assert granted_after[0] == 53


async def test_a_return_to_a_lost_generation_is_dropped(client: redis.asyncio.Redis) -> None:
    _, stamp, _, _ = await lease(client, "sw", 10, 10)
    await client.hset("gen", mapping={"id": "a-newer-one", "settle": "0"})
    await give_back(client, "sw", 10, stamp, 10)  # of the old generation
    *_, used, _ = await lease_raw(client, "sw", 10, 0, 0, generation="a-newer-one")
    assert float(used) == 10


async def test_the_heartbeat_counts_replicas_and_names_the_generation(
    client: redis.asyncio.Redis,
) -> None:
    for replica in ("a", "b"):
        count, generation = await client.eval(
            budget_scripts.HEARTBEAT, 2, "replicas", "gen", replica, "10", GEN
        )
    assert (count, generation.decode()) == (2, GEN)


async def test_a_fleets_first_start_leases_at_once(client: redis.asyncio.Redis) -> None:
    await client.flushall()
    granted, *_, generation = await lease_raw(client, "sw", 60, 10, generation="")
    assert float(granted) == 10, "nothing was spent before: nothing to settle"
    assert (await lease(client, "sw", 60, 10, generation=generation))[0] == 10
