"""The router's own limits toward providers (``spec.rateLimit``), through the real router process:
spill-over to the next provider, bounded waiting, 429 with Retry-After, request priorities and
concurrency.

One router serves the module; each scenario is its own RoutingPolicy over its own providers and
fakes, so no limiter is shared between tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import (
    Doc,
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "3s"}
SLOW = 0.6  # seconds a "slow" fake takes to answer

# scenario -> (rateLimit of each provider, in priority order (None: unlimited), failover changes)
SCENARIOS: dict[str, tuple[list[dict[str, Any] | None], dict[str, Any]]] = {
    "spill": ([{"requestsPerMinute": 2}, None], {}),
    "spill-sliding": ([{"requestsPerMinute": 2, "algorithm": "SlidingWindow"}, None], {}),
    "spill-tokens": ([{"tokensPerMinute": 300}, None], {}),
    "wait": ([{"requestsPerMinute": 60}], {}),
    "refuse": ([{"requestsPerMinute": 1}], {"retryAfterMaxWait": "2s"}),
    "bounded": ([{"requestsPerMinute": 60}], {"retryAfterMaxWait": "500ms"}),
    "priority": ([{"requestsPerMinute": 60}], {}),
    "line": ([{"requestsPerMinute": 60}], {}),
    "concurrency": ([{"maxConcurrency": 1}, None], {}),
    "concurrency-alone": ([{"maxConcurrency": 1}], {}),
}


@dataclass
class World:
    router: RouterProcess
    fakes: dict[str, FakeProvider]

    def fake(self, scenario: str, index: int) -> FakeProvider:
        return self.fakes[f"{scenario}-{index}"]


def _body(scenario: str, **extra: Any) -> dict[str, Any]:
    return {"model": scenario, "messages": [{"role": "user", "content": "hi"}], **extra}


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    docs: list[Doc] = []
    for scenario, (limits, failover) in SCENARIOS.items():
        refs = []
        for i, limit in enumerate(limits):
            name = f"{scenario}-{i}"
            extra = {"rateLimit": limit} if limit is not None else {}
            docs.append(
                provider(name, "OpenAICompatible", fakes[name].base_url, priority=i + 1, **extra)
            )
            refs.append({"name": name, "model": MODEL})
        docs.append(policy(scenario, [scenario], refs, failover={**FAILOVER, **failover}))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fakes = {
        f"{scenario}-{i}": FakeProvider(f"{scenario}-{i}", Flavor.OPENAI, [MODEL])
        for scenario, (limits, _) in SCENARIOS.items()
        for i in range(len(limits))
    }
    with running_fakes(*fakes.values()):
        folder = tmp_path_factory.mktemp("router-limits") / "manifests"
        with running_router(folder, _docs(fakes)) as router:
            yield World(router, fakes)


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.router.url, timeout=15, trust_env=False) as c:
        yield c


def chat(world: World, scenario: str, priority: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"x-signalbox-priority": priority} if priority else None
    return world.router.post("/v1/chat/completions", json=_body(scenario, **extra), headers=headers)


def _provider(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return resp.headers["x-signalbox-provider"]


def _rate_limit_error(resp: httpx.Response) -> int:
    """Checks a 429 in the OpenAI shape; the Retry-After seconds."""
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    return int(resp.headers["retry-after"])


@pytest.mark.parametrize(
    ("scenario", "allowed"), [("spill", 1), ("spill-sliding", 2)], ids=["TokenBucket", "Sliding"]
)
def test_used_up_request_rate_spills_to_the_next_provider(
    world: World, scenario: str, allowed: int
) -> None:
    # requestsPerMinute 2: a token bucket allows a one-second burst (1), a sliding window 2.
    served = [_provider(chat(world, scenario)) for _ in range(allowed + 2)]
    assert served == [f"{scenario}-0"] * allowed + [f"{scenario}-1"] * 2
    assert len(world.fake(scenario, 0).seen) == allowed, "the limited provider was not sent more"


def test_a_request_too_big_for_the_token_budget_goes_elsewhere(world: World) -> None:
    # tokensPerMinute 300; a small request fits, one asking for 1000 output tokens never does.
    assert _provider(chat(world, "spill-tokens", max_tokens=10)) == "spill-tokens-0"
    assert _provider(chat(world, "spill-tokens", max_tokens=1000)) == "spill-tokens-1"
    assert len(world.fake("spill-tokens", 0).seen) == 1


def test_with_only_limited_providers_a_request_waits_for_capacity(world: World) -> None:
    assert _provider(chat(world, "wait")) == "wait-0"  # uses the bucket (1 request a second)
    started = time.monotonic()
    resp = chat(world, "wait")
    waited = time.monotonic() - started
    assert _provider(resp) == "wait-0"
    assert 0.5 < waited < 2.5, "it waited about a second for the bucket to refill"
    assert world.router.metric("signalbox_router_limiter_waits_total", priority="standard") >= 1


def test_a_wait_longer_than_retry_after_max_wait_is_refused_with_429(world: World) -> None:
    assert _provider(chat(world, "refuse")) == "refuse-0"
    started = time.monotonic()
    resp = chat(world, "refuse")
    assert time.monotonic() - started < 0.5, "refused at once, not after waiting"
    assert 50 <= _rate_limit_error(resp) <= 60  # one request a minute
    assert len(world.fake("refuse", 0).seen) == 1
    assert world.router.metric("signalbox_router_rate_limited_total", priority="standard") >= 1


def test_retry_after_max_wait_bounds_even_short_waits(world: World) -> None:
    # The bucket refills in about a second, but this policy waits at most 500ms.
    assert _provider(chat(world, "bounded")) == "bounded-0"
    started = time.monotonic()
    resp = chat(world, "bounded")
    assert time.monotonic() - started < 0.4
    assert _rate_limit_error(resp) >= 1


def test_sheddable_is_refused_at_once_while_critical_waits(world: World) -> None:
    fake = world.fake("priority", 0)
    assert _provider(chat(world, "priority")) == "priority-0"
    started = time.monotonic()
    shed = chat(world, "priority", "sheddable")
    assert time.monotonic() - started < 0.3
    assert _rate_limit_error(shed) >= 1

    started = time.monotonic()
    critical = chat(world, "priority", "Critical")  # the header is case-insensitive
    assert _provider(critical) == "priority-0"
    assert time.monotonic() - started > 0.4, "it waited for capacity rather than being refused"
    assert len(fake.seen) == 2, "the sheddable request never reached the provider"
    assert world.router.metric("signalbox_router_rate_limited_total", priority="sheddable") == 1
    assert world.router.metric("signalbox_router_limiter_waits_total", priority="critical") >= 1


async def _timed(http: httpx.AsyncClient, scenario: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = await http.post("/v1/chat/completions", json=_body(scenario))
    return resp, time.monotonic() - started


async def test_max_concurrency_sends_parallel_requests_to_the_next_provider(
    world: World, http: httpx.AsyncClient
) -> None:
    world.fake("concurrency", 0).set_faults(latency=SLOW)
    results = await asyncio.gather(*(_timed(http, "concurrency") for _ in range(2)))
    by_provider = {_provider(resp): elapsed for resp, elapsed in results}
    assert set(by_provider) == {"concurrency-0", "concurrency-1"}
    assert by_provider["concurrency-0"] >= SLOW
    assert by_provider["concurrency-1"] < SLOW, "the overflow did not wait for the slow one"
    world.fake("concurrency", 0).clear_faults()
    # The slot was given back: the preferred provider takes the next request again.
    resp, _ = await _timed(http, "concurrency")
    assert _provider(resp) == "concurrency-0"


async def test_max_concurrency_alone_queues_rather_than_overlaps(
    world: World, http: httpx.AsyncClient
) -> None:
    fake = world.fake("concurrency-alone", 0)
    fake.set_faults(latency=SLOW)
    results = await asyncio.gather(*(_timed(http, "concurrency-alone") for _ in range(2)))
    assert [_provider(resp) for resp, _ in results] == ["concurrency-alone-0"] * 2
    first, second = sorted(s.at for s in fake.seen)
    assert second - first >= SLOW - 0.05, "the second request was sent while the first ran"
    assert max(elapsed for _, elapsed in results) >= 2 * SLOW - 0.05
    fake.clear_faults()


@pytest.mark.parametrize("value", ["urgent", "high", "critical,standard"])
def test_an_invalid_priority_header_is_a_400(world: World, value: str) -> None:
    before = len(world.fake("wait", 0).seen)
    resp = chat(world, "wait", value)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == "x-signalbox-priority"
    assert error["code"] == "invalid_header"
    assert error["type"] == "invalid_request_error"
    assert len(world.fake("wait", 0).seen) == before


async def test_waiting_critical_requests_overtake_standard_ones(
    world: World, http: httpx.AsyncClient
) -> None:
    assert _provider(chat(world, "line")) == "line-0"  # uses the one request of this second
    done: list[str] = []

    async def ask(priority: str, delay: float) -> httpx.Response:
        await asyncio.sleep(delay)
        resp = await http.post(
            "/v1/chat/completions", json=_body("line"), headers={"x-signalbox-priority": priority}
        )
        done.append(priority)
        return resp

    standard, critical = await asyncio.gather(ask("standard", 0.0), ask("critical", 0.15))
    assert standard.status_code == critical.status_code == 200
    assert done == ["critical", "standard"], "the later critical request was served first"
