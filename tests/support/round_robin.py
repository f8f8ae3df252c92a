"""A client that sends round robin to several router processes, as a Service spreads requests
over a Deployment's replicas, faster than the providers' limits allow."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from tests.support.router import RouterProcess


async def hammer(
    routers: Sequence[RouterProcess],
    model: str,
    seconds: float,
    parallel: int = 9,
    until: int | None = None,
    **extra: Any,
) -> list[ChatCompletion]:
    """Round robin over ``routers``, ``parallel`` at a time, for ``seconds`` or until ``until``
    answers came: the answers (a 429 is counted out and tried again after 20 ms, by the next
    router)."""
    clients = [
        openai.AsyncOpenAI(base_url=r.base_url, api_key="unused", max_retries=0, timeout=15)
        for r in routers
    ]
    turn = itertools.count()
    answers: list[ChatCompletion] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop and (until is None or len(answers) < until):
            client = clients[next(turn) % len(clients)]
            try:
                answers.append(
                    await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}], **extra
                    )
                )
            except openai.RateLimitError:
                await asyncio.sleep(0.02)

    try:
        await asyncio.gather(*(worker() for _ in range(parallel)))
    finally:
        for client in clients:
            await client.close()
    return answers
