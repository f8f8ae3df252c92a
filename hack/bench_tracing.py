"""What tracing costs the router, benchmarked (not a test): ``bench_router.py --tracing`` runs
this instead of the single-router benchmark.

Routers of this checkout run side by side on CPU 0, reading the same manifests: tracing off,
tracing on with a sampling ratio of 1.0 (every request: a request span and an attempt span,
exported over OTLP/HTTP) and of 0.01, and with ``--baseline DIR`` another checkout's router (the
commit before tracing, say), which shows what tracing off costs. The spans go to a real Jaeger
(all-in-one, memory storage) on CPU 1, beside the fake provider and the load. Measured, every
router in alternating rounds (the order rotates, so going later hits each alike): throughput at
32 connections (wrk), and p50 and p99 at a fixed 200 req/s with the router's CPU time per
request. Prints a table and one JSON line of ratios to tracing off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.jaeger import Jaeger
from tests.support.operator import free_port

import bench_router as br
import bench_streams

SAMPLED = {"traced 1.0": "1.0", "traced 0.01": "0.01"}


def start_router(
    work: Path, env: dict[str, str], checkout: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    root = checkout or br.REPO
    args = ["--manifests", str(work), "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "signalbox_router", *args],
        env={**br.ENV, "PYTHONPATH": f"{root / 'router'}:{root / 'operator'}", **env},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def run(args: argparse.Namespace, work: Path, procs: list[Any]) -> int:
    fake_port = free_port()
    procs.append(br.pinned(1, [sys.executable, "-m", "signalbox_fake", "--port", str(fake_port)]))
    upstream = f"http://127.0.0.1:{fake_port}/v1"
    br.wait_http(upstream + "/models")
    jaeger = Jaeger(work / "jaeger").start()
    try:
        assert jaeger.proc is not None
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(jaeger.proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        return _measure(args, work, procs, upstream, jaeger)
    finally:
        jaeger.stop()


def _measure(
    args: argparse.Namespace, work: Path, procs: list[Any], upstream: str, jaeger: Jaeger
) -> int:
    br.router_manifests(work, upstream)
    routers: dict[str, tuple[subprocess.Popen[bytes], str]] = {"off": start_router(work, {})}
    for name, ratio in SAMPLED.items():
        routers[name] = start_router(
            work,
            jaeger.env(
                f"signalbox-router-{ratio}",
                OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                OTEL_TRACES_SAMPLER_ARG=ratio,
                OTEL_BSP_SCHEDULE_DELAY="5000",  # the SDK's default
            ),
        )
    if args.baseline is not None:
        routers["baseline"] = start_router(work, {}, args.baseline)
    procs.extend(p for p, _ in routers.values())
    for _, url in routers.values():
        br.wait_http(url.replace("/v1/chat/completions", "/v1/models"))
        br.wrk(url, 2)  # warm up
    names = list(routers)
    rps: dict[str, list[float]] = {n: [] for n in names}
    latency: dict[str, list[float]] = {n: [] for n in names}
    cpu = dict.fromkeys(names, 0.0)
    for i in range(args.rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            rps[name].append(br.wrk(routers[name][1], args.duration)["rps"])
        for name in order:
            pid = routers[name][0].pid
            before = bench_streams.cpu_seconds(pid)
            latency[name].extend(
                asyncio.run(br.fixed_rate(routers[name][1], 200, args.duration / 2))
            )
            cpu[name] += bench_streams.cpu_seconds(pid) - before
    rows = {}
    for name in names:
        samples = sorted(latency[name])
        rows[name] = {
            "rps": statistics.median(rps[name]),
            "p50_ms": br.pct(samples, 0.5),
            "p99_ms": br.pct(samples, 0.99),
            "cpu_us_per_request": cpu[name] / len(samples) * 1e6,
        }
    off = rows["off"]
    print(f"{'router':12} {'req/s':>8} {'÷ off':>6} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10}")
    for name, row in rows.items():
        print(
            f"{name:12} {row['rps']:8.0f} {row['rps'] / off['rps']:6.3f} {row['p50_ms']:8.3f}"
            f" {row['p99_ms']:8.3f} {row['cpu_us_per_request']:10.0f}"
        )
    print("throughput rounds (req/s): " + "; ".join(f"{n} {rps[n]}" for n in names))
    print(
        json.dumps(
            {
                name: {
                    "throughput_vs_off": round(row["rps"] / off["rps"], 3),
                    "added_p50_ms_vs_off": round(row["p50_ms"] - off["p50_ms"], 3),
                    "cpu_per_request_vs_off": round(
                        row["cpu_us_per_request"] / off["cpu_us_per_request"], 3
                    ),
                }
                for name, row in rows.items()
                if name != "off"
            }
            | {"spans_in_jaeger_services": sorted(jaeger.services())}
        )
    )
    return 0
