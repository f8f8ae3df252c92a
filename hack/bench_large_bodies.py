"""How long a large request body holds up the router's other requests (not a test).

    .venv/bin/python hack/bench_large_bodies.py [--baseline DIR] [--rounds 3]

The router runs pinned to CPU 0, the fake provider and the clients on CPU 1. For each body
shape (about 6-9 MB: 200,000 chat messages, 200,000 Anthropic content blocks, 200,000
Responses input items, 40,000 tool definitions), one request is sent while a second process
asks ``/healthz`` every 2 ms; printed are the request's own time and the longest ``/healthz``
wait during it, the median over ``--rounds``. ``--baseline DIR`` runs another checkout's router
the same way, turn by turn, and adds the ratio of the worst waits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_router import ENV, stop, wait_http

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from tests.support.operator import free_port  # noqa: E402
from tests.support.router import policy, provider  # noqa: E402

MODEL = "m"
TURNS = 200_000

PINGER = textwrap.dedent("""
    import http.client, sys, time
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
    end, worst = time.perf_counter() + float(sys.argv[2]), 0.0
    while time.perf_counter() < end:
        t = time.perf_counter()
        c.request("GET", "/healthz")
        c.getresponse().read()
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.002)
    print(worst)
""")


def shapes() -> dict[str, tuple[str, dict[str, Any]]]:
    parts = [{"type": "text", "text": "ab"}] * TURNS
    tool = {"type": "object", "properties": {"a": {"type": "string"}}}
    return {
        "chat, 200k messages": (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "word word word"}] * TURNS},
        ),
        "messages, 200k blocks": (
            "/v1/messages",
            {"max_tokens": 10, "messages": [{"role": "user", "content": parts}]},
        ),
        "responses, 200k items": (
            "/v1/responses",
            {"input": [{"role": "user", "content": "ab"}] * TURNS},
        ),
        "chat, 40k tools": (
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {"type": "function", "function": {"name": f"f{i}", "parameters": tool}}
                    for i in range(40_000)
                ],
            },
        ),
    }


def router(root: Path, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**ENV, "PYTHONPATH": f"{root / 'router'}:{root / 'operator'}"}
    args = ["--manifests", str(folder), "--port", str(port), "--max-body", str(32 << 20)]
    cmd = [sys.executable, "-m", "signalbox_router", *args, "--log-level", "warning"]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


def one(port: int, path: str, body: bytes) -> tuple[float, float]:
    """The request's time and the longest /healthz wait meanwhile, in seconds."""
    pinger = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-c", PINGER, str(port), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"content-type": "application/json", "x-api-key": "k"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback)
        resp.read()
    took = time.perf_counter() - started
    out, _ = pinger.communicate()
    return took, float(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's root")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # this script's own clients stay off the router's core
    work = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    fake_port = free_port()
    fake = [sys.executable, "-m", "signalbox_fake", "--port", str(fake_port), "--model", MODEL]
    procs = [subprocess.Popen(["taskset", "-c", "1", *fake], env=ENV, stdout=subprocess.DEVNULL)]
    try:
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        wait_http(upstream + "/models")
        docs = [
            provider("up", "OpenAICompatible", upstream, models=[MODEL]),
            policy("p", [MODEL], ["up"]),
        ]
        (work / "docs.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
        roots = {"router": REPO} | ({"baseline": args.baseline} if args.baseline else {})
        ports = {}
        for name, root in roots.items():
            proc, ports[name] = router(root, work)
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{ports[name]}/healthz")
        ratios = {}
        for shape, (path, extra) in shapes().items():
            body = json.dumps({"model": MODEL, **extra}).encode()
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in ports}
            for _ in range(args.rounds):
                for name, port in ports.items():  # turn by turn
                    runs[name].append(one(port, path, body))
            worst = {n: statistics.median(w for _, w in r) for n, r in runs.items()}
            line = "  ".join(
                f"{n}: request {statistics.median(t for t, _ in r):.2f} s, "
                f"worst /healthz {worst[n] * 1000:.0f} ms"
                for n, r in runs.items()
            )
            print(f"{shape} ({len(body) >> 20} MB)  {line}", flush=True)
            if "baseline" in worst:
                ratios[shape] = round(worst["router"] / worst["baseline"], 3)
        if ratios:
            print(json.dumps({"worst_healthz_wait_router_vs_baseline": ratios}))
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    raise SystemExit(main())
