"""Router benchmark (not a test): the router beside the Python ceiling and LiteLLM, one run.

    .venv/bin/python hack/bench_router.py [--duration 10] [--rounds 4] [--no-litellm]
    .venv/bin/python hack/bench_router.py --replicas 3 --redis   (hack/bench_shared.py)
    .venv/bin/python hack/bench_router.py --tracing [--baseline DIR]   (hack/bench_tracing.py)
    .venv/bin/python hack/bench_router.py --baseline DIR   (DIR: another checkout's root)

The system under test runs pinned to CPU 0; the fake provider and the load generators (wrk
and this script's own clients) run on CPU 1, off the router's core. Compared side by side:
  (a) the fake provider called directly,
  (b) a bare pass-through proxy written here (uvicorn + raw ASGI + aiohttp client): the
      Python ceiling for a proxy,
  (c) the router (a policy with two providers, Priority, rate limits configured but not
      binding, metrics on),
  (d) LiteLLM's proxy in its own virtualenv (one worker, logging off), when installed
      (hack/bench_router.py --install-litellm).
Measured: throughput at 32 connections (wrk; the bare proxy and the router in alternating
rounds, first one then the other, so drifts of this shared machine and the cost of going second
hit both alike), added latency at a fixed 200 req/s
(direct, bare and router in alternating rounds; the bare proxy's is the floor any Python hop
sets here), time to first token and chunks per
second of a 500-chunk stream (direct and routed streams alternate; the fake yields its core to
the client so arrival times are taken promptly), and the router's memory after 100,000
requests. Many streams (``--only streams`` runs just this case): 1,000 clients each hold a
stream that the fake paces at 20 chunks/s (20,000 chunks/s in all), through the bare proxy and
the router in alternating rounds; per server, CPU time per 1,000 chunks delivered and peak RSS
(hack/bench_streams.py). Prints a table and ends with one JSON line of the ratios.

``--baseline DIR`` runs a second router from another checkout (``git worktree add /tmp/base
HEAD~1``, say) on the same core, in the same alternating rounds of throughput and added
latency, and time to first token and chunk rate of one stream, so two versions of the code
compare side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

import bench_streams

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "router")]

from tests.support.operator import free_port, wait_for  # noqa: E402

LITELLM_VENV = Path.home() / ".cache" / "signalbox" / "litellm-venv"
MODEL = "gpt-4o-mini"
LITELLM_KEY = "sk-" + "5f1e" * 16  # LiteLLM's proxy refuses to start without a master key
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]}
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'router'}:{REPO / 'operator'}"}

BARE_PROXY = textwrap.dedent("""
    import sys, aiohttp, uvicorn
    UP = sys.argv[1]
    state = {}
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["s"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body, more = b"", True
        while more:
            m = await receive(); body += m.get("body", b""); more = m.get("more_body", False)
        async with state["s"].post(UP + scope["path"], data=body,
                                   headers={"content-type": "application/json"}) as r:
            kind = r.headers.get("content-type", "application/json").encode()
            if not kind.startswith(b"text/event-stream"):
                data = await r.read()
                await send({"type": "http.response.start", "status": r.status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.start", "status": r.status,
                        "headers": [(b"content-type", kind)]})
            async for data in r.content.iter_any():  # each read goes on at once
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop",
                http="httptools", log_level="warning", access_log=False)
""")


def pinned(cpu: int, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kw,
    )


def wait_http(url: str) -> None:
    import urllib.request

    def up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return True
        except OSError as exc:
            return "HTTP Error" in str(exc)

    wait_for(up, 60, url)


def wrk(url: str, duration: float, connections: int = 32) -> dict[str, float]:
    script = Path(tempfile.gettempdir()) / "signalbox-wrk.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(BODY))}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {LITELLM_KEY}"\n'
    )
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(errors.group(1)) if errors else 0,
        "p50_ms": _wrk_ms(out, "50%"),
        "p99_ms": _wrk_ms(out, "99%"),
    }


def _wrk_ms(out: str, label: str) -> float:
    m = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def fixed_rate(url: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent at a fixed rate, open loop."""
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def one() -> None:
            t0 = time.perf_counter()
            async with s.post(url, json=BODY) as r:
                await r.read()
                if r.status == 200:
                    lat.append((time.perf_counter() - t0) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return sorted(lat)


async def stream_timing(urls: dict[str, str], runs: int = 25) -> dict[str, tuple[float, float]]:
    """Per stack: median time to first content chunk (ms) and chunks per second of a 500-chunk
    stream; the stacks take turns, one stream each."""
    ttfts: dict[str, list[float]] = {name: [] for name in urls}
    rates: dict[str, list[float]] = {name: [] for name in urls}
    body = {**BODY, "stream": True}
    async with aiohttp.ClientSession() as s:
        for run in range(runs + 2):  # the first two warm up
            for name, url in urls.items():
                t0 = time.perf_counter()
                first, chunks = None, 0
                async with s.post(url, json=body) as r:
                    async for line in r.content:
                        if line.startswith(b"data: {") and b'"content":"' in line:
                            chunks += 1
                            first = first or time.perf_counter()
                end = time.perf_counter()
                if first is None or chunks < 500:
                    raise RuntimeError(f"the stream broke after {chunks} chunks")
                if run >= 2:
                    ttfts[name].append((first - t0) * 1000)
                    rates[name].append(chunks / (end - first))
    return {n: (statistics.median(ttfts[n]), statistics.median(rates[n])) for n in urls}


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def router_manifests(folder: Path, upstream: str) -> None:
    providers = [
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "LLMProvider",
            "metadata": {"name": name},
            "spec": {
                "type": "OpenAICompatible",
                "endpoint": {"url": upstream},
                "priority": prio,
                "models": [
                    {
                        "name": MODEL,
                        "capabilities": ["chat", "streaming"],
                        "cost": {"inputPerMTok": "0.15", "outputPerMTok": "0.60"},
                    }
                ],
                "rateLimit": {"requestsPerMinute": 1_000_000, "maxConcurrency": 10_000},
            },
        }
        for name, prio in (("primary", 10), ("backup", 20))
    ]
    policy = {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "bench"},
        "spec": {
            "models": [MODEL],
            "strategy": "Priority",
            "providers": [{"name": "primary"}, {"name": "backup"}],
        },
    }
    (folder / "bench.yaml").write_text("\n---\n".join(json.dumps(d) for d in [*providers, policy]))


def baseline_router(checkout: Path, folder: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """The router of another checkout, on the router's core, reading the same manifests."""
    if not (checkout / "router" / "signalbox_router").is_dir():
        raise SystemExit(f"--baseline {checkout}: not a checkout of this project")
    env = {**ENV, "PYTHONPATH": f"{checkout / 'router'}:{checkout / 'operator'}"}
    args = ["--manifests", str(folder), "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "signalbox_router", *args],
        env=env,
        cwd=checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def litellm_proc(port: int, upstream: str, folder: Path) -> subprocess.Popen[bytes] | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        return None
    config = folder / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": upstream,
                            "api_key": "sk-bench",
                        },
                    }
                ],
                "litellm_settings": {"set_verbose": False, "json_logs": False},
                "general_settings": {"disable_spend_logs": True, "master_key": LITELLM_KEY},
            }
        )
    )
    env = {**ENV, "LITELLM_LOG": "ERROR"}
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            str(binary),
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def install_litellm() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run(
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="throughput rounds (bare and router; the order flips each round)",
    )
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--install-litellm", action="store_true")
    parser.add_argument("--only", choices=["streams", "latency"], help="run only this case")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose router runs beside this one"
    )
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams")
    parser.add_argument("--stream-rate", type=float, default=20.0, help="chunks/s per stream")
    parser.add_argument("--replicas", type=int, default=3, help="routers per set, with --redis")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="instead: shared limits through Redis against local ones, and a cache hit "
        "(hack/bench_shared.py)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead: the router with tracing off, and on at sampling ratios 1.0 and 0.01, "
        "spans sent to a real Jaeger (hack/bench_tracing.py; --baseline adds another checkout)",
    )
    args = parser.parse_args()
    raise_fd_limit(4 * args.streams + 1000)  # inherited by the servers started here
    if shutil.which("wrk") is None and args.only is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.install_litellm:
        install_litellm()
    os.sched_setaffinity(0, {1})  # this script's own clients stay off the router's core too
    work = Path(tempfile.mkdtemp(prefix="signalbox-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if args.redis:
            import bench_shared

            return bench_shared.run(args, work, procs)
        if args.tracing:
            import bench_tracing

            return bench_tracing.run(args, work, procs)
        return run(args, work, procs)
    finally:
        stop(procs)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the processes a benchmark started."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(10)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"{needed} open files are needed; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def run(args: argparse.Namespace, work: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    fake_port, bare_port, router_port, litellm_port = (free_port() for _ in range(4))
    procs.append(
        pinned(
            1,
            [
                sys.executable,
                "-m",
                "signalbox_fake",
                "--port",
                str(fake_port),
                "--model",
                MODEL,
            ],
        )
    )
    upstream = f"http://127.0.0.1:{fake_port}/v1"
    wait_http(upstream + "/models")
    procs.append(
        pinned(
            0, [sys.executable, "-c", BARE_PROXY, f"http://127.0.0.1:{fake_port}", str(bare_port)]
        )
    )
    router_manifests(work, upstream)
    router = pinned(
        0,
        [
            sys.executable,
            "-m",
            "signalbox_router",
            "--manifests",
            str(work),
            "--port",
            str(router_port),
            "--log-level",
            "warning",
        ],
    )
    procs.append(router)
    pids = {"bare": procs[1].pid, "router": router.pid}
    urls = {
        "direct": f"http://127.0.0.1:{fake_port}/v1/chat/completions",
        "bare": f"http://127.0.0.1:{bare_port}/v1/chat/completions",
        "router": f"http://127.0.0.1:{router_port}/v1/chat/completions",
    }
    if args.baseline is not None:
        baseline = baseline_router(args.baseline, work, free_port())
        procs.append(baseline[0])
        urls["baseline"], pids["baseline"] = baseline[1], baseline[0].pid
    litellm = None if args.no_litellm else litellm_proc(litellm_port, upstream, work)
    if litellm is not None:
        procs.append(litellm)
        urls["litellm"] = f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
    for name in ("bare", "router", "baseline", "litellm"):
        if name in urls:
            wait_http(urls[name].replace("/v1/chat/completions", "/v1/models"))
    if args.only == "streams":
        print(json.dumps({"streams": print_streams(streams_case(args, fake_port, urls, pids))}))
        return 0
    if args.only == "latency":
        print_latency(latency_rows(args, urls, pids))
        return 0
    rows: dict[str, dict[str, float]] = {}
    compared = [n for n in ("bare", "router", "baseline") if n in urls]
    for name, url in urls.items():
        wrk(url, 2)  # warm up
        if name not in compared:
            rows[name] = wrk(url, args.duration)
    if litellm is not None:  # done with it: its background work would share the router's core
        litellm.terminate()
        litellm.wait(30)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in compared}
    for i in range(args.rounds):  # the order flips each round: whichever runs second is slower
        for name in compared if i % 2 == 0 else compared[::-1]:
            rounds[name].append(wrk(urls[name], args.duration))
    for name, results in rounds.items():
        rows[name] = {k: statistics.median(r[k] for r in results) for k in results[0]}
    ratios = [r["rps"] / b["rps"] for b, r in zip(rounds["bare"], rounds["router"], strict=True)]
    rows["router"]["vs_bare_per_round"] = min(ratios)  # the worst round, for the report
    print(
        "throughput rounds (req/s): "
        + "; ".join(
            f"bare {b['rps']:.0f} router {r['rps']:.0f} ({r['rps'] / b['rps']:.3f})"
            for b, r in zip(rounds["bare"], rounds["router"], strict=True)
        )
    )
    if "baseline" in rounds:
        print(
            "baseline rounds (req/s): "
            + "; ".join(
                f"{r['rps']:.0f} ({r['rps'] / b['rps']:.3f} of bare)"
                for b, r in zip(rounds["bare"], rounds["baseline"], strict=True)
            )
        )
    for name, row in latency_rows(args, urls, pids).items():
        rows[name].update(row)
    set_faults(fake_port, {"reply_words": 500})
    streamed: dict[str, str] = {n: urls[n] for n in ("direct", "router", "baseline") if n in urls}
    for name, (_, cps) in asyncio.run(stream_timing(streamed)).items():
        rows[name].update(chunks_per_s=cps)
    # The fake shares its core with this client. At a lower priority it no longer keeps the
    # client from taking the first chunk's arrival time while it writes the other 499 (but the
    # direct stream's rate then suffers, so rates come from the run above).
    os.setpriority(os.PRIO_PROCESS, procs[0].pid, 10)
    for name, (ttft, _) in asyncio.run(stream_timing(streamed)).items():
        rows[name].update(ttft_ms=ttft)
    set_faults(fake_port, None)
    many = streams_case(args, fake_port, urls, pids)
    memory = soak(urls["router"], router.pid)
    print_report(rows, memory, print_streams(many))
    return 0


def latency_rows(
    args: argparse.Namespace, urls: dict[str, str], pids: dict[str, int]
) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms) at a fixed 200 req/s: direct, bare and router in alternating rounds
    (the bare proxy's added latency is the floor); for the proxies, their CPU time per request
    (µs), which tells their own work from time spent waiting."""
    names = [n for n in ("direct", "bare", "router", "baseline") if n in urls]
    latencies: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(latencies, 0.0)
    for _ in range(args.rounds):
        for name, samples in latencies.items():
            before = bench_streams.cpu_seconds(pids[name]) if name in pids else 0.0
            samples.extend(asyncio.run(fixed_rate(urls[name], 200, args.duration / 2)))
            if name in pids:
                cpu[name] += bench_streams.cpu_seconds(pids[name]) - before
    rows = {}
    for name, samples in latencies.items():
        samples.sort()
        rows[name] = {"at200_p50_ms": pct(samples, 0.5), "at200_p99_ms": pct(samples, 0.99)}
        if name in pids:
            rows[name]["at200_cpu_us_per_request"] = cpu[name] / len(samples) * 1e6
    return rows


def print_latency(rows: dict[str, dict[str, float]]) -> None:
    for name, row in rows.items():
        cpu = row.get("at200_cpu_us_per_request")
        print(
            f"{name:8} p50 {row['at200_p50_ms']:.3f} ms  p99 {row['at200_p99_ms']:.3f} ms"
            + ("" if cpu is None else f"  CPU {cpu:.0f} µs/request")
        )
    d, b, r = rows["direct"], rows["bare"], rows["router"]
    added = {
        "bare_added_p50_ms_at_200rps": round(b["at200_p50_ms"] - d["at200_p50_ms"], 3),
        "router_added_p50_ms_at_200rps": round(r["at200_p50_ms"] - d["at200_p50_ms"], 3),
        "router_minus_bare_p50_ms_at_200rps": round(r["at200_p50_ms"] - b["at200_p50_ms"], 3),
    }
    if "baseline" in rows:
        base = rows["baseline"]["at200_p50_ms"]
        added["baseline_minus_bare_p50_ms_at_200rps"] = round(base - b["at200_p50_ms"], 3)
    print(json.dumps(added))


def set_faults(fake_port: int, faults: dict[str, Any] | None) -> None:
    """Set the fake's faults, or reset them with None."""
    import urllib.request

    req = (
        urllib.request.Request(f"http://127.0.0.1:{fake_port}/_fake/reset", method="POST")
        if faults is None
        else urllib.request.Request(
            f"http://127.0.0.1:{fake_port}/_fake/faults",
            data=json.dumps(faults).encode(),
            method="PUT",
        )
    )
    urllib.request.urlopen(req).read()  # noqa: S310 (loopback)


def streams_case(
    args: argparse.Namespace, fake_port: int, urls: dict[str, str], pids: dict[str, int]
) -> dict[str, list[bench_streams.StreamRun]]:
    """Bare proxy and router in alternating rounds of many paced streams."""
    window = max(2.0, args.duration)
    words = bench_streams.stream_words(window, args.stream_rate)
    set_faults(fake_port, {"reply_words": words, "chunk_interval": 1 / args.stream_rate})
    runs: dict[str, list[bench_streams.StreamRun]] = {"bare": [], "router": []}
    try:
        for _ in range(args.rounds):
            for name, results in runs.items():
                results.append(
                    bench_streams.run(urls[name], pids[name], BODY, args.streams, window)
                )
    finally:
        set_faults(fake_port, None)
    return runs


def print_streams(runs: dict[str, list[bench_streams.StreamRun]]) -> dict[str, float]:
    """Print the rounds; the ratios for the JSON line."""
    bare, router = runs["bare"], runs["router"]
    for i, (b, r) in enumerate(zip(bare, router, strict=True)):
        print(
            f"streams round {i + 1}: CPU ms per 1,000 chunks bare {b.cpu_ms_per_1k_chunks:.1f} "
            f"router {r.cpu_ms_per_1k_chunks:.1f} "
            f"({r.cpu_ms_per_1k_chunks / b.cpu_ms_per_1k_chunks:.3f}); chunks/s per stream "
            f"bare {b.chunks_per_s_per_stream:.1f} router {r.chunks_per_s_per_stream:.1f}; "
            f"peak RSS MB bare {b.peak_rss_mb:.0f} router {r.peak_rss_mb:.0f}; "
            f"broken streams bare {b.broken} router {r.broken}"
        )
    cpu_b = statistics.median(b.cpu_ms_per_1k_chunks for b in bare)
    cpu_r = statistics.median(r.cpu_ms_per_1k_chunks for r in router)
    return {
        "bare_cpu_ms_per_1k_chunks": round(cpu_b, 2),
        "router_cpu_ms_per_1k_chunks": round(cpu_r, 2),
        "router_vs_bare_cpu": round(cpu_r / cpu_b, 3),
        "router_vs_bare_cpu_worst_round": round(
            max(
                r.cpu_ms_per_1k_chunks / b.cpu_ms_per_1k_chunks
                for b, r in zip(bare, router, strict=True)
            ),
            3,
        ),
        "bare_peak_rss_mb": round(max(b.peak_rss_mb for b in bare), 1),
        "router_peak_rss_mb": round(max(r.peak_rss_mb for r in router), 1),
        "chunks_per_s_per_stream_min": round(
            min(x.chunks_per_s_per_stream for x in (*bare, *router)), 1
        ),
        "broken_streams": sum(x.broken for x in (*bare, *router)),
    }


def soak(url: str, pid: int) -> dict[str, float]:
    """RSS after 100,000 requests, and its growth over the last 50,000."""
    served, samples = 0, []
    while served < 100_000:
        served += int(wrk(url, 8)["requests"])
        samples.append((served, bench_streams.rss_mb(pid)))
    half = next(rss for n, rss in samples if n >= 50_000)
    return {
        "requests": served,
        "rss_mb": samples[-1][1],
        "growth_last_half_mb": samples[-1][1] - half,
    }


def print_report(
    rows: dict[str, dict[str, float]], memory: dict[str, float], streams: dict[str, float]
) -> None:
    cols = [
        "rps",
        "p50_ms",
        "p99_ms",
        "non2xx",
        "at200_p50_ms",
        "at200_p99_ms",
        "ttft_ms",
        "chunks_per_s",
    ]
    print(f"{'stack':8} " + " ".join(f"{c:>13}" for c in cols))
    for name, row in rows.items():
        print(f"{name:8} " + " ".join(f"{row.get(c, float('nan')):13.2f}" for c in cols))
    print(
        f"router memory: {memory['rss_mb']:.1f} MB after {memory['requests']:.0f} requests, "
        f"{memory['growth_last_half_mb']:+.1f} MB over the last half"
    )
    d, b, r = rows["direct"], rows["bare"], rows["router"]
    ratios = {
        "router_vs_bare_throughput": round(r["rps"] / b["rps"], 3),
        "router_vs_bare_throughput_worst_round": round(r["vs_bare_per_round"], 3),
        "router_vs_litellm_throughput": round(r["rps"] / rows["litellm"]["rps"], 1)
        if "litellm" in rows
        else None,
        "added_p50_ms_at_200rps": round(r["at200_p50_ms"] - d["at200_p50_ms"], 3),
        "added_p99_ms_at_200rps": round(r["at200_p99_ms"] - d["at200_p99_ms"], 3),
        "bare_added_p50_ms_at_200rps": round(b["at200_p50_ms"] - d["at200_p50_ms"], 3),
        "bare_added_p99_ms_at_200rps": round(b["at200_p99_ms"] - d["at200_p99_ms"], 3),
        "ttft_overhead_ms": round(r["ttft_ms"] - d["ttft_ms"], 3),
        "stream_chunks_per_s_router_vs_direct": round(r["chunks_per_s"] / d["chunks_per_s"], 3),
        "router_rss_mb_after_100k": round(memory["rss_mb"], 1),
        "router_rss_growth_last_50k_mb": round(memory["growth_last_half_mb"], 1),
        "streams": streams,
    }
    if "baseline" in rows:  # the other checkout's router, from the same rounds
        base = rows["baseline"]
        ratios["baseline_vs_bare_throughput"] = round(base["rps"] / b["rps"], 3)
        ratios["router_minus_bare_p50_ms_at_200rps"] = round(
            r["at200_p50_ms"] - b["at200_p50_ms"], 3
        )
        ratios["baseline_minus_bare_p50_ms_at_200rps"] = round(
            base["at200_p50_ms"] - b["at200_p50_ms"], 3
        )
        ratios["baseline_ttft_overhead_ms"] = round(base["ttft_ms"] - d["ttft_ms"], 3)
        ratios["baseline_stream_chunks_per_s_vs_direct"] = round(
            base["chunks_per_s"] / d["chunks_per_s"], 3
        )
    print(json.dumps(ratios))


if __name__ == "__main__":
    sys.exit(main())
