"""Randomized hostile traffic: thousands of mixed good and hostile requests against a router
whose providers have ``maxConcurrency`` and a breaker, one of them an upstream that misbehaves at
random. Afterwards everything the router held is back at rest (in-flight attempts, limiter
slots, breaker trials), every answer was one a client can read, and memory stayed bounded.

Real HTTP on loopback throughout: the router process in manifests mode, the fake provider and a
scripted upstream. The seed is printed so that a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import scripted
from tests.support.router import (
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
)

REQUESTS = int(os.environ.get("SIGNALBOX_HOSTILE_REQUESTS", "2000"))
CONCURRENCY = 16
SEED = int(os.environ.get("SIGNALBOX_HOSTILE_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODEL = "flaky-model"
ALLOWED = {200, 400, 404, 429, 502, 503, 504}
CIRCUIT = {"failureThreshold": 3, "openDuration": "1s", "maxOpenDuration": "2s"}
LIMITS = {"maxConcurrency": 3}
TIMEOUTS = {"connect": "1s", "firstToken": "300ms", "streamIdle": "300ms", "request": "2s"}


def _flaky(up: scripted.ScriptedUpstream, rng: random.Random) -> scripted.Behavior:
    """An upstream that answers each request with a misbehaviour drawn at random."""
    c = scripted.chunk_event
    plain: list[scripted.Behavior] = [
        scripted.json_answer(scripted.completion(MODEL)),
        scripted.json_answer({"error": {"message": "boom", "type": "server_error"}}, 500),
        scripted.json_answer({"error": {"message": "slow down"}}, 429),
        scripted.redirect(307, "http://127.0.0.1:9/elsewhere"),
        scripted.json_answer(None, raw=b"{not json"),
        scripted.json_answer(scripted.completion(MODEL, usage={"prompt_tokens": "x"})),
        scripted.json_answer(scripted.completion(MODEL, usage={"completion_tokens": 10**400})),
        scripted.json_answer({**scripted.completion(MODEL), "choices": [{"message": "x"}]}),
        scripted.stall(0.6, scripted.json_answer(scripted.completion(MODEL))),
    ]
    streams: list[scripted.Behavior] = [
        scripted.stream(
            [c(MODEL, "a"), c(MODEL, "b"), c(MODEL, None, "stop"), b"data: [DONE]\n\n"]
        ),
        scripted.stream([c(MODEL, "a"), c(MODEL, None, "stop")], pause=0.01),  # no [DONE]
        scripted.stream([c(MODEL, "a")], pause=0.01),  # cut before it finished
        scripted.stream([c(MODEL, "a"), b"data: {oops\n\n"], pause=0.01),
        scripted.stream(
            [c(MODEL, "a"), scripted.sse_data({"choices": [{"index": [0], "delta": "x"}]})],
            pause=0.01,
        ),
        scripted.stream([c(MODEL, "a"), c(MODEL, None, "stop", usage={"prompt_tokens": -1})]),
        scripted.endless(MODEL, up, every=0.05),
        scripted.json_answer({"error": {"message": "boom"}}, 503),
    ]

    def run(h: scripted.Handler) -> None:
        rng.choice(streams if h.json.get("stream") else plain)(h)

    return run


Action = Callable[[httpx.AsyncClient, str], Awaitable[int]]


async def _chat(client: httpx.AsyncClient, url: str) -> int:
    resp = await client.post(url, json=_body())
    _readable(resp)
    return resp.status_code


async def _stream(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("POST", url, json=_body(stream=True)) as resp:
        body = b"".join([part async for part in resp.aiter_bytes()])
    if resp.status_code == 200:
        last = body.strip().splitlines()[-1]
        assert last == b"data: [DONE]" or b'"error"' in last, body[-300:]
    return resp.status_code


async def _leave_mid_stream(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("POST", url, json=_body(stream=True)) as resp:
        async for _ in resp.aiter_bytes():
            break  # and the connection closes with the block
    return resp.status_code


async def _leave_before_the_answer(client: httpx.AsyncClient, url: str) -> int:
    try:
        await client.post(url, json=_body(), timeout=0.05)
    except httpx.TimeoutException:
        return 200  # the client left; nothing to read
    return 200


async def _too_deep(client: httpx.AsyncClient, url: str) -> int:
    deep: Any = "x"
    for _ in range(300):
        deep = {"a": deep}
    resp = await client.post(url, json={"model": "mixed", "messages": [deep]})
    _readable(resp)
    return resp.status_code


async def _not_json(client: httpx.AsyncClient, url: str) -> int:
    resp = await client.post(url, content=b'{"model": "mixed", "messages": [')
    _readable(resp)
    return resp.status_code


async def _unknown_model(client: httpx.AsyncClient, url: str) -> int:
    resp = await client.post(url, json=_body(model=f"nope-{random.random()}"))
    _readable(resp)
    return resp.status_code


ACTIONS: list[tuple[Action, int]] = [
    (_chat, 30),
    (_stream, 25),
    (_leave_mid_stream, 15),
    (_leave_before_the_answer, 5),
    (_too_deep, 10),
    (_not_json, 5),
    (_unknown_model, 10),
]


def _body(stream: bool = False, model: str = "mixed") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def _readable(resp: httpx.Response) -> None:
    """Every answer is JSON; every error one in the OpenAI shape."""
    body = resp.json()
    if resp.status_code != 200:
        assert isinstance(body.get("error"), dict), resp.text
        assert isinstance(body["error"].get("message"), str)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _holdings(router: RouterProcess) -> dict[str, float]:
    held = {}
    for line in router.metrics().splitlines():
        for gauge in (
            "signalbox_router_in_flight{",
            "signalbox_router_limiter_slots_in_use{",
            "signalbox_router_breaker_trials{",
        ):
            if line.startswith(gauge):
                series, _, value = line.rpartition(" ")
                held[series] = float(value)
    return held


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    rng = random.Random(SEED)
    up = scripted.ScriptedUpstream({})
    up.behaviors[MODEL] = _flaky(up, rng)
    good = FakeProvider("good", Flavor.OPENAI, ["good-model"])
    docs = [
        provider(
            "flaky",
            "OpenAICompatible",
            "",
            models=[MODEL],
            circuitBreaker=CIRCUIT,
            rateLimit=LIMITS,
            timeouts=TIMEOUTS,
        ),
        provider(
            "good",
            "OpenAICompatible",
            "",
            models=["good-model"],
            circuitBreaker=CIRCUIT,
            rateLimit=LIMITS,
            timeouts=TIMEOUTS,
        ),
        policy(
            "mixed",
            ["mixed"],
            [{"name": "flaky", "model": MODEL}, {"name": "good", "model": "good-model"}],
            failover={"maxAttempts": 2, "backoff": {"base": "10ms", "max": "20ms"}},
        ),
    ]
    with up.running(), running_fakes(good):
        docs[0]["spec"]["endpoint"]["url"] = up.url + "/v1"
        docs[1]["spec"]["endpoint"]["url"] = good.base_url
        folder = tmp_path_factory.mktemp("hostile-traffic") / "manifests"
        with running_router(folder, docs) as r:
            yield r


async def _traffic(router: RouterProcess, count: int, rng: random.Random) -> Counter[int]:
    url = router.url + "/v1/chat/completions"
    actions, weights = zip(*ACTIONS, strict=True)
    statuses: Counter[int] = Counter()
    queue = list(rng.choices(actions, weights=weights, k=count))

    async def worker() -> None:
        limits = httpx.Limits(max_connections=4)
        async with httpx.AsyncClient(timeout=15, trust_env=False, limits=limits) as client:
            while queue:
                statuses[await queue.pop()(client, url)] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses


def test_hostile_traffic_leaves_nothing_held_and_memory_bounded(router: RouterProcess) -> None:
    print(f"seed {SEED} (SIGNALBOX_HOSTILE_SEED replays it)")
    rng = random.Random(SEED)
    assert router.proc is not None
    asyncio.run(_traffic(router, 200, rng))  # warm up: caches, pools, first snapshot
    before = _rss_mb(router.proc.pid)
    started = time.monotonic()
    statuses = asyncio.run(_traffic(router, REQUESTS, rng))
    took = time.monotonic() - started
    after = _rss_mb(router.proc.pid)
    print(f"{REQUESTS} requests in {took:.1f}s: {dict(sorted(statuses.items()))}")
    print(f"router RSS {before:.1f} MB -> {after:.1f} MB")
    assert set(statuses) <= ALLOWED, statuses
    assert statuses[200] > 0
    assert statuses[400] > 0

    def at_rest() -> bool:
        return all(v == 0 for v in _holdings(router).values())

    deadline = time.monotonic() + 10  # streams the clients left end within streamIdle
    while not at_rest() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _holdings(router), "the gauges are missing"
    assert at_rest(), json.dumps(_holdings(router), indent=1)
    assert after - before < 40, f"RSS grew {after - before:.1f} MB"
    # Both providers still serve once the flaky one behaves: nothing was left half-open.
    assert router.post("/v1/chat/completions", json=_body(model="good-model")).status_code == 200
