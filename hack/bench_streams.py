"""The many-streams case of hack/bench_router.py: many slow streams open at once.

A long answer reaches most clients as a stream that trickles for seconds, so a proxy holds
thousands of them at once and pays per chunk, not per request. Here ``streams`` clients (raw
sockets on one uvloop event loop) each open a stream, their starts spread over one second, and
the fake provider paces every stream (its ``chunk_interval`` knob). Once all of them flow, the
server's CPU time (utime + stime from /proc/<pid>/stat) is read at the start and the end of a
window and divided by the chunks the clients received in it; its RSS is sampled throughout and
the peak kept. The rate the clients saw is reported too: when it falls short of the pacing,
this machine could not generate the load (the fake and the clients share one core).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import uvloop

TICK = os.sysconf("SC_CLK_TCK")
RAMP = 1.0  # seconds over which the clients start
SETTLE = 0.5  # after the ramp, before the window opens


@dataclass
class StreamRun:
    cpu_ms_per_1k_chunks: float
    peak_rss_mb: float
    chunks_per_s_per_stream: float  # in the window: the pacing when nothing falls behind
    broken: int  # streams that were refused or ended without [DONE]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Stream(asyncio.Protocol):
    """One client stream on a raw socket: the request written once, the answer only counted.

    The load generator shares a core with the fake provider, and an HTTP client library's
    per-read cost there would slow the very chunks being measured.
    """

    def __init__(self, request: bytes, board: _Board) -> None:
        self.request, self.board = request, board
        self.head = b""
        self.tail = b""  # the last bytes seen, so a marker split across reads still counts
        self.flowing = False
        self.ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        seen = self.tail + data
        self.board.received += seen.count(b"data: ")
        if not self.flowing and b"data: " in seen:
            self.flowing = True
            self.board.flowing += 1
        if not self.head:
            self.head = data[:12]
        self.tail = seen[-8:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.board.ended += not self.board.closing
            self.ended.set_result(self.head == b"HTTP/1.1 200" and self.board.closing)


class _Board:
    received = 0  # SSE events, [DONE] included
    flowing = 0  # streams that received their first event
    ended = 0  # streams that ended before the run closed them: each one is broken
    closing = False


async def many_streams(
    url: str, pid: int, body: dict[str, Any], streams: int, window: float
) -> StreamRun:
    """One run against one server. The window opens once every stream flows and closes after
    ``window`` seconds or as a stream ends, whichever comes first; then the clients hang up
    (the streams are long enough to last the window even when the chunks come late)."""
    loop = asyncio.get_running_loop()
    where = urllib.parse.urlsplit(url)
    payload = json.dumps({**body, "stream": True}).encode()
    request = (
        f"POST {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    board = _Board()
    peak = rss_mb(pid)

    opened: list[_Stream] = []

    async def one(delay: float) -> bool:
        await asyncio.sleep(delay)
        try:
            _, stream = await loop.create_connection(
                lambda: _Stream(request, board), "127.0.0.1", where.port or 80
            )
        except OSError:
            board.ended += 1
            return False
        opened.append(stream)
        ok: bool = await stream.ended
        return ok

    async def until(ready: Callable[[], bool], limit: float) -> None:
        nonlocal peak
        due = time.perf_counter() + limit
        while not ready() and time.perf_counter() < due:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.05)

    await quiet(pid)
    clients = [asyncio.create_task(one(RAMP * i / streams)) for i in range(streams)]
    await until(lambda: board.flowing + board.ended >= streams, 60)
    await until(lambda: False, SETTLE)
    cpu0, got0, t0 = cpu_seconds(pid), board.received, time.perf_counter()
    await until(lambda: board.ended > 0, window)
    cpu1, got1, t1 = cpu_seconds(pid), board.received, time.perf_counter()
    board.closing = True
    for stream in opened:
        stream.transport.abort()
    oks = await asyncio.gather(*clients)
    await quiet(
        pid
    )  # a server that keeps reading a stream its client left must not bill the next run
    chunks = max(1, got1 - got0)
    return StreamRun(
        cpu_ms_per_1k_chunks=(cpu1 - cpu0) * 1000 / chunks * 1000,
        peak_rss_mb=peak,
        chunks_per_s_per_stream=chunks / (t1 - t0) / streams,
        broken=oks.count(False),
    )


async def quiet(pid: int, limit: float = 60.0) -> None:
    """Until the server uses under 2% of a core over half a second (or ``limit`` passes)."""
    due = time.perf_counter() + limit
    while time.perf_counter() < due:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.01:
            return


def run(url: str, pid: int, body: dict[str, Any], streams: int, window: float) -> StreamRun:
    """``many_streams`` on its own uvloop event loop (the cheaper loop for the clients)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(many_streams(url, pid, body, streams, window))


def stream_words(window: float, rate: float) -> int:
    """Content chunks per stream so that every stream still flows when the window closes."""
    return int((RAMP + SETTLE + window) * rate) + 20  # a pause per chunk: never faster
