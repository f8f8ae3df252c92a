"""The router's HTTP layer chosen by measurement (not a test): the same application served by
uvicorn with the bounded httptools protocol (what ships) and by granian, side by side.

    .venv/bin/python hack/bench_http_servers.py --install    (granian into its own virtualenv)
    .venv/bin/python hack/bench_http_servers.py [--duration 5] [--rounds 4]

Both serve ``RouterApp`` as ``python -m signalbox_router`` builds it, from the same manifests,
pinned to CPU 0; the fake provider and the load generators run on CPU 1. Measured in
alternating rounds: throughput at 32 connections (wrk), and time to first token and chunks per
second of one 500-chunk stream. Granian (a Rust HTTP server for Python, BSD-3-Clause) runs in a
virtualenv of its own that sees this project's packages; it is a benchmark's guest, never a
dependency of the router. Prints a table and one JSON line of ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_router import (
    ENV,
    REPO,
    pinned,
    router_manifests,
    set_faults,
    stop,
    stream_timing,
    wait_http,
)
from bench_router import wrk as wrk_run

sys.path[:0] = [str(REPO)]

from tests.support.operator import free_port  # noqa: E402

GRANIAN = "granian==2.8.9"
GRANIAN_VENV = Path.home() / ".cache" / "signalbox" / "granian-venv"
FACTORY = '''
"""The router's application, built as ``python -m signalbox_router`` builds it, for granian."""
import os
from signalbox_router.__main__ import build_app, parse_args

def app():
    return build_app(parse_args(os.environ["SIGNALBOX_ROUTER_ARGS"].split()))
'''


def install() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(GRANIAN_VENV)], check=True)
    site = next((GRANIAN_VENV / "lib").glob("python3*/site-packages"))
    ours = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "signalbox-project.pth").write_text(f"{ours}\n")
    subprocess.run([str(GRANIAN_VENV / "bin" / "pip"), "install", "-q", GRANIAN], check=True)


def granian(work: Path, port: int) -> subprocess.Popen[bytes]:
    (work / "granian_router.py").write_text(FACTORY)
    env = {
        **ENV,
        "PYTHONPATH": f"{work}:{ENV['PYTHONPATH']}",
        "SIGNALBOX_ROUTER_ARGS": f"--manifests {work} --log-level warning",
    }
    args = ["--interface", "asgi", "--factory", "--loop", "uvloop", "--http", "1", "--no-ws"]
    args += ["--workers", "1", "--runtime-threads", "1", "--log-level", "warning"]
    args += ["--port", str(port), "granian_router:app"]
    return subprocess.Popen(
        ["taskset", "-c", "0", str(GRANIAN_VENV / "bin" / "granian"), *args],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="install granian, then stop")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # this script's own clients stay off the router's core
    if args.install:
        install()
        return 0
    if not (GRANIAN_VENV / "bin" / "granian").exists():
        raise SystemExit("granian is not installed: run with --install first")
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    fake_port, uvicorn_port, granian_port = free_port(), free_port(), free_port()
    fake = [sys.executable, "-m", "signalbox_fake", "--port", str(fake_port), "--model"]
    procs = [pinned(1, [*fake, "gpt-4o-mini"])]
    try:
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        wait_http(upstream + "/models")
        router_manifests(work, upstream)
        uvicorn = [sys.executable, "-m", "signalbox_router", "--manifests", str(work)]
        procs.append(pinned(0, [*uvicorn, "--port", str(uvicorn_port), "--log-level", "warning"]))
        procs.append(granian(work, granian_port))
        urls = {
            "uvicorn": f"http://127.0.0.1:{uvicorn_port}/v1/chat/completions",
            "granian": f"http://127.0.0.1:{granian_port}/v1/chat/completions",
        }
        for url in urls.values():
            wait_http(url.replace("/v1/chat/completions", "/healthz"))
            wrk_run(url, 2)  # warm up
        rps: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                rps[name].append(wrk_run(url, args.duration)["rps"])
        set_faults(fake_port, {"reply_words": 500})
        streams = asyncio.run(stream_timing(urls))
        for name in urls:
            rounds = ", ".join(f"{r:.0f}" for r in rps[name])
            ttft, rate = streams[name]
            print(
                f"{name:8} throughput {statistics.median(rps[name]):7.0f} req/s ({rounds});"
                f" one stream: first token {ttft:.2f} ms, {rate:,.0f} chunks/s"
            )
        ratios = {
            "granian_vs_uvicorn_throughput": round(
                statistics.median(rps["granian"]) / statistics.median(rps["uvicorn"]), 3
            ),
            "granian_vs_uvicorn_stream_chunks_per_s": round(
                streams["granian"][1] / streams["uvicorn"][1], 3
            ),
            "granian_minus_uvicorn_ttft_ms": round(
                streams["granian"][0] - streams["uvicorn"][0], 3
            ),
        }
        print(json.dumps(ratios))
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    raise SystemExit(main())
