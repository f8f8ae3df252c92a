"""Reads the queue length of every vLLM pod behind an in-cluster provider.

vLLM exports ``vllm:num_requests_waiting`` on ``/metrics``. Scraped every few seconds, it lets
the router send a request to the pod with the shortest queue; a reading older than
``FRESH_SECONDS`` is ignored and the router falls back to its own outstanding-request counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

import aiohttp

from signalbox_providers import dialects
from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
PERIOD = 2.0
FRESH_SECONDS = 6.0
_WAITING = re.compile(r"^vllm:num_requests_waiting(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


def waiting(metrics_text: str) -> float | None:
    """Total waiting requests in a vLLM /metrics page (summed over models), or None."""
    values = [float(v) for v in _WAITING.findall(metrics_text)]
    return sum(values) if values else None


async def _scrape(session: aiohttp.ClientSession, endpoint: str, path: str) -> float | None:
    url = dialects.root_of(endpoint) + path
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
            if resp.status == 200:
                return waiting(await resp.text())
    return None


async def run(state: RouterState, session: aiohttp.ClientSession) -> None:
    """Keep ``state.queue_depth`` fresh for multi-pod vLLM providers until cancelled."""
    while True:
        endpoints = {
            e: path
            for p in state.snapshot.providers.values()
            if (path := dialects.dialect(p.spec.type).queue_metrics_path) and len(p.endpoints) > 1
            for e in p.endpoints
        }
        results = await asyncio.gather(*(_scrape(session, e, p) for e, p in endpoints.items()))
        now = time.monotonic()
        for endpoint, depth in zip(endpoints, results, strict=True):
            if depth is not None:
                state.queue_seen[endpoint] = now
                state.queue_depth[endpoint] = depth
        for endpoint in list(state.queue_depth):
            if now - state.queue_seen.get(endpoint, 0.0) > FRESH_SECONDS:
                state.queue_depth.pop(endpoint, None)
        await asyncio.sleep(PERIOD)
