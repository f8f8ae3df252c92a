"""Requests waiting for rate-limited capacity wait in one line per model name; a line goes once
it is empty, so model names a client makes up (a glob policy matches any number) leave nothing
behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from signalbox_router.failures import RequestError
from signalbox_router.forwarding import exchange
from signalbox_router.forwarding.controls import DEFAULT
from signalbox_router.forwarding.failover import Forwarder
from signalbox_router.forwarding.jobs import job_for
from signalbox_router.routing import selection
from signalbox_router.sources import manifests
from signalbox_router.state import RouterState
from tests.support.router import policy, provider


def test_an_emptied_line_goes() -> None:
    state = RouterState()
    first, second = object(), object()
    state.line("m").enqueue(first, DEFAULT.priority, 1.0)
    state.line("m").enqueue(second, DEFAULT.priority, 2.0)
    state.leave_line("m", first)
    assert list(state.waiting) == ["m"]
    state.leave_line("m", second)
    state.leave_line("never-waited", object())
    assert state.waiting == {}


def test_made_up_model_names_refused_for_capacity_leave_no_line(tmp_path: Path) -> None:
    docs = [
        provider(
            "a",
            "OpenAICompatible",
            "http://127.0.0.1:9/v1",
            models=["gpt-x"],
            rateLimit={"maxConcurrency": 1},
        ),
        policy("p", ["gpt-*"], ["a"], failover={"retryAfterMaxWait": "1s"}),
    ]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))

    async def run() -> list[int]:
        state = RouterState()
        state.snapshot = manifests.load(tmp_path)
        state.limiter(state.snapshot.providers["a"]).try_acquire(time.monotonic(), 0)  # busy
        forwarder = Forwarder(exchange.session(), state)

        async def one(i: int) -> int:
            name = f"gpt-made-up-{i}"
            body = {"model": name, "messages": [{"role": "user", "content": "x"}]}
            needs = selection.Needs(frozenset())
            route = selection.route(name, needs, state.snapshot, state.view())
            try:
                reply = await forwarder.forward(job_for("chat", body, route, DEFAULT))
            except RequestError as refused:
                return refused.status
            return reply.status

        try:
            statuses = await asyncio.gather(*(one(i) for i in range(300)))
        finally:
            await forwarder.session.close()
        assert state.waiting == {}
        return statuses

    assert set(asyncio.run(run())) == {429}
