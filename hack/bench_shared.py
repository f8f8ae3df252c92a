"""Shared limits and the response cache, benchmarked (not a test): ``bench_router.py --replicas
3 --redis`` runs this instead of the single-router benchmark.

Two sets of N router processes serve the same providers, whose limits are configured but do not
bind: one set counts limits for itself (local), the other shares them through a real
redis-server (shared). Routers run pinned to CPU 0; Redis, the fake provider and the load run
on CPU 1. Measured, the two sets in alternating rounds: throughput (one wrk per router, summed)
and p50 latency at a fixed 200 req/s spread round robin; then the fraction of requests whose
router made a lease round trip to Redis (from the routers' own metrics), and a cache hit: the
p50 of a repeated deterministic request answered from the cache beside the fake provider
called directly. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.operator import free_port
from tests.support.redis_server import RedisServer

import bench_router as br

CACHED = "cached-model"


def manifests(folder: Path, upstream: str) -> None:
    limits = {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000}
    provider = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": "primary"},
        "spec": {"type": "OpenAICompatible", "endpoint": {"url": upstream}, "rateLimit": limits},
    }
    policies = [
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": name},
            "spec": {"models": [name], "providers": [{"name": "primary", "model": br.MODEL}]}
            | extra,
        }
        for name, extra in ((br.MODEL, {}), (CACHED, {"cache": {"ttl": "10m"}}))
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in [provider, *policies]))


def start_routers(work: Path, n: int, extra: list[str], procs: list[Any]) -> list[str]:
    urls = []
    for _ in range(n):
        port = free_port()
        command = [sys.executable, "-m", "signalbox_router", "--manifests", str(work)]
        procs.append(
            br.pinned(0, [*command, "--port", str(port), "--log-level", "warning", *extra])
        )
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        br.wait_http(url + "/v1/models")
    return urls


def throughput(urls: list[str], duration: float) -> float:
    """Requests/s of one wrk per router at once, summed."""
    from concurrent.futures import ThreadPoolExecutor

    chat = [u + "/v1/chat/completions" for u in urls]
    with ThreadPoolExecutor(len(chat)) as pool:
        runs = list(pool.map(lambda u: br.wrk(u, duration, max(4, 32 // len(chat))), chat))
    return sum(r["rps"] for r in runs)


async def round_robin_p50(urls: list[str], rate: float, seconds: float) -> float:
    share = rate / len(urls)
    runs = await asyncio.gather(
        *(br.fixed_rate(u + "/v1/chat/completions", share, seconds) for u in urls)
    )
    return br.pct(sorted(x for r in runs for x in r), 0.5)


def metric(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:  # noqa: S310 (loopback)
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.startswith(name) and all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def fixed_rate(url: str, body: dict[str, Any], rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of ``body`` posted at a fixed rate, open loop, sorted."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(url, json=body) as resp:
                await resp.read()
                if resp.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)

        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return sorted(latencies)


def cache_hit_p50(router: str, upstream: str, seconds: float) -> dict[str, float]:
    """p50 of cache hits at 200 req/s, and of the fake provider called directly."""
    body = {**br.BODY, "model": CACHED, "temperature": 0}
    url = router + "/v1/chat/completions"
    asyncio.run(fixed_rate(url, body, 10, 0.5))  # the first answer is kept
    hits = asyncio.run(fixed_rate(url, body, 200, seconds))
    direct_body = {**body, "model": br.MODEL}  # the name the fake serves
    direct = asyncio.run(fixed_rate(upstream + "/chat/completions", direct_body, 200, seconds))
    return {"hit_p50_ms": br.pct(hits, 0.5), "direct_p50_ms": br.pct(direct, 0.5)}


def run(args: argparse.Namespace, work: Path, procs: list[Any]) -> int:
    redis = RedisServer(work / "redis").start()
    try:
        fake_port = free_port()
        fake = [sys.executable, "-m", "signalbox_fake", "--port", str(fake_port)]
        procs.append(br.pinned(1, [*fake, "--model", br.MODEL]))
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        br.wait_http(upstream + "/models")
        manifests(work / "manifests", upstream)
        sets = {
            "local": start_routers(work / "manifests", args.replicas, [], procs),
            "shared": start_routers(
                work / "manifests", args.replicas, ["--redis-url", redis.url], procs
            ),
        }
        for urls in sets.values():
            throughput(urls, 2)  # warm up
        rps: dict[str, list[float]] = {"local": [], "shared": []}
        p50: dict[str, list[float]] = {"local": [], "shared": []}
        for i in range(args.rounds):  # the order flips each round
            for name in ("local", "shared") if i % 2 == 0 else ("shared", "local"):
                rps[name].append(throughput(sets[name], args.duration))
                p50[name].append(asyncio.run(round_robin_p50(sets[name], 200, args.duration / 2)))
        shared = sets["shared"]
        trips = sum(
            metric(u, "signalbox_router_shared_budget_round_trips_total", purpose="lease")
            for u in shared
        )
        requests = sum(metric(u, "signalbox_router_requests_total") for u in shared)
        hit = cache_hit_p50(shared[0], upstream, args.duration / 2)
        local_rps, shared_rps = statistics.median(rps["local"]), statistics.median(rps["shared"])
        report = {
            "replicas": args.replicas,
            "local_rps": round(local_rps, 1),
            "shared_rps": round(shared_rps, 1),
            "shared_vs_local_throughput": round(shared_rps / local_rps, 3),
            "local_p50_ms_at_200rps": round(statistics.median(p50["local"]), 3),
            "shared_p50_ms_at_200rps": round(statistics.median(p50["shared"]), 3),
            "shared_added_p50_ms": round(
                statistics.median(p50["shared"]) - statistics.median(p50["local"]), 3
            ),
            "redis_round_trips_per_request": round(trips / max(requests, 1), 4),
            "cache_hit_p50_ms": round(hit["hit_p50_ms"], 3),
            "provider_direct_p50_ms": round(hit["direct_p50_ms"], 3),
            "cache_hit_added_p50_ms": round(hit["hit_p50_ms"] - hit["direct_p50_ms"], 3),
        }
        print(json.dumps(report))
        return 0
    finally:
        redis.stop()
