"""The router's own cost per request (not a test): its code alone, in one process.

    .venv/bin/python hack/bench_router_code.py [--requests 20000] [--profile | --opcodes | --cold]

The ASGI application answers chat completions as it does behind uvicorn, but the upstream is a
stub that hands back a canned OpenAI answer at once, so what is timed is parsing, checking,
selection, limits, forwarding, metering and the reply: the part of a request's cost that
``hack/bench_router.py`` cannot separate from the HTTP stack. Steadier than a network
benchmark, it suits comparing two versions of the code; it reports the quickest of 20 batches,
the one least disturbed by the rest of the machine. ``--profile`` adds cProfile's view.
``--opcodes`` counts instead the Python bytecodes each request executes, in all and per function
(with ``sys.settrace``): slow, but the same count on any machine, however busy, and held to
``OPCODE_BUDGET`` by ``tests/unit/hack/test_opcode_budget.py``.

``--cold`` times requests as a proxy meets them at a low rate: before each one, a buffer larger
than the CPU's caches (``--cold-mb``) is written over, so the request finds its code and data
in memory, not in cache. Beside it, in the same loop and turn by turn, a bare pass-through
application (read the body, post it to the same stub, send the answer) is timed the same way.
It reports the medians until the answer's body is sent (what the client waits for) and in all
(with what runs after the answer), cold and hot.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

BATCHES = 20
# Bytecodes one plain chat request may execute in the router's code (``--opcodes``); the same
# count on any machine. A change that needs more raises it here and says why in its commit.
OPCODE_BUDGET = 3650
UPSTREAM = "http://127.0.0.1:9/v1"
JSON_TYPE = (b"content-type", b"application/json")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "router"), str(REPO / "hack")]

from bench_router import BODY, MODEL, router_manifests  # noqa: E402
from signalbox_api import tracing  # noqa: E402
from signalbox_router.edge.router_app import RouterApp  # noqa: E402
from signalbox_router.forwarding.failover import Forwarder  # noqa: E402
from signalbox_router.request_trace import Tracing  # noqa: E402
from signalbox_router.sources import manifests  # noqa: E402
from signalbox_router.state import RouterState  # noqa: E402

ANSWER = json.dumps(
    {
        "id": "chatcmpl-0",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
).encode()


class _Content:
    def is_eof(self) -> bool:
        return True

    async def read(self, n: int = -1) -> bytes:
        return ANSWER


class _Answer:
    status = 200
    headers: dict[str, str] = {}
    content = _Content()
    content_length = len(ANSWER)

    async def read(self) -> bytes:
        return ANSWER

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Upstream:
    """Stands in for the aiohttp session: every POST is answered at once."""

    def post(self, url: str, **_: Any) -> Any:
        async def answer() -> _Answer:
            return _Answer()

        return answer()


class _Bytecodes:
    """Bytecodes executed per function, and Python calls made, while installed as the tracer."""

    def __init__(self) -> None:
        self.per_code: collections.Counter[types.CodeType] = collections.Counter()
        self.calls = 0

    def call(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == __file__:
            return None  # the harness's own lines are not the router's work
        frame.f_trace_opcodes = True
        self.calls += 1
        return self.opcode

    def opcode(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.per_code[frame.f_code] += 1
        return self.opcode

    def per_request(self, requests: int) -> float:
        return sum(self.per_code.values()) / requests

    def report(self, requests: int) -> None:
        total, calls = self.per_request(requests), self.calls / requests
        verdict = "within" if total <= OPCODE_BUDGET else "OVER"
        print(
            f"{total:.0f} bytecodes and {calls:.0f} Python calls per request"
            f" ({verdict} the budget of {OPCODE_BUDGET})"
        )
        for code, count in self.per_code.most_common(15):
            where = code.co_filename.replace(str(REPO) + "/", "")
            print(f"{count / requests:8.1f}  {code.co_name} ({where}:{code.co_firstlineno})")


Request = Callable[[], Awaitable[None]]
Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def router_app() -> RouterApp:
    folder = Path(tempfile.mkdtemp(prefix="signalbox-bench-code-"))
    router_manifests(folder, UPSTREAM)
    state = RouterState()
    state.snapshot = manifests.load(folder, None)
    state.synced_at = time.monotonic()
    app = RouterApp(state)
    app.forwarder = Forwarder(_Upstream(), state)  # type: ignore[arg-type]
    traced = tracing.provider("signalbox-router")  # as the OTEL_* variables say: off by default
    if traced is not None:
        app.tracing = Tracing.of(traced, state.secrets)
    return app


async def warmed_up(app: App | None = None) -> tuple[Request, list[float]]:
    """One chat completion through ``app`` (the router's by default), as a call, and when the
    last one's answer body was sent (``time.perf_counter``); 2,000 of them have run already."""
    app = app or router_app()
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    body = json.dumps(BODY).encode()
    sent: list[Any] = []
    sent_at = [0.0]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent_at[0] = time.perf_counter()
        sent.append(message)

    async def request() -> None:
        sent.clear()
        await app(scope, receive, send)

    for _ in range(2000):
        await request()
    if sent[0]["status"] != 200:
        raise SystemExit(f"the router answered {sent[0]['status']}: {sent[1]['body']!r}")
    return request, sent_at


async def run(requests: int, profile: bool) -> float:
    """Microseconds per request: the quickest of BATCHES batches."""
    request, _ = await warmed_up()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    batch = max(1, requests // BATCHES)
    best = float("inf")
    for _ in range(BATCHES):  # the quickest batch: the least disturbed by the rest of the machine
        started = time.perf_counter()
        for _ in range(batch):
            await request()
        best = min(best, time.perf_counter() - started)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return best / batch * 1e6


def bare_app() -> App:
    """The bare pass-through of hack/bench_router.py, over the same stub upstream."""
    upstream = _Upstream()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = await upstream.post(UPSTREAM, data=body)
        data = await answer.read()
        start = {"type": "http.response.start", "status": 200, "headers": [JSON_TYPE]}
        await send(start)
        await send({"type": "http.response.body", "body": data})

    return app


async def cold(requests: int, megabytes: int) -> dict[str, float]:
    """Median µs per request (cold and hot) of the router and the bare application, turn by
    turn: until the answer's body is sent, and in all."""
    router, router_sent = await warmed_up()
    bare, bare_sent = await warmed_up(bare_app())
    evict = bytearray(megabytes << 20)
    zeros = bytes(len(evict) // 64)
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(2 * requests):
        evicting = i < requests
        for name, request, sent in (("router", router, router_sent), ("bare", bare, bare_sent)):
            if evicting:
                evict[::64] = zeros  # one write per cache line: none of the request stays cached
            started = time.perf_counter()
            await request()
            ended = time.perf_counter()
            phase = "cold" if evicting else "hot"
            times[f"{name}_{phase}_to_answer_us"].append((sent[0] - started) * 1e6)
            times[f"{name}_{phase}_in_all_us"].append((ended - started) * 1e6)
    return {key: round(statistics.median(values), 1) for key, values in times.items()}


async def count_bytecodes(requests: int) -> _Bytecodes:
    request, _ = await warmed_up()
    counter = _Bytecodes()
    sys.settrace(counter.call)
    try:
        for _ in range(requests):
            await request()
    finally:
        sys.settrace(None)
    return counter


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes (200 requests)")
    parser.add_argument("--cold", action="store_true", help="time requests with cold caches")
    parser.add_argument("--cold-mb", type=int, default=64, help="what --cold writes over (MB)")
    args = parser.parse_args()
    if args.opcodes:
        asyncio.run(count_bytecodes(200)).report(200)
        return 0
    if args.cold:
        medians = asyncio.run(cold(min(args.requests, 3000), args.cold_mb))
        for name in ("router", "bare"):
            m = {key.removeprefix(name + "_"): v for key, v in medians.items()}
            print(
                f"{name:7} until the answer is sent: cold {m['cold_to_answer_us']:6.1f} µs, hot "
                f"{m['hot_to_answer_us']:5.1f} µs; in all: cold {m['cold_in_all_us']:6.1f} µs, "
                f"hot {m['hot_in_all_us']:5.1f} µs"
            )
        print(json.dumps(medians))
        return 0
    per_request = asyncio.run(run(args.requests, args.profile))
    print(json.dumps({"router_code_us_per_request": round(per_request, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
