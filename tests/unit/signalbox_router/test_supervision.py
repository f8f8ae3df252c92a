"""A crashed background task is restarted, counted, logged without values, and /readyz shows
it at once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import prometheus_client as prom
import pytest

from signalbox_api.provider import LLMProviderSpec
from signalbox_router import supervision
from signalbox_router.asgi import sending
from signalbox_router.edge.router_app import Incoming, RouterApp
from signalbox_router.routing.snapshot import ProviderEntry, Snapshot
from signalbox_router.state import RouterState

SECRET = "sk-do-not-log-me"


def _state() -> RouterState:
    spec = LLMProviderSpec.model_validate(
        {"type": "OpenAICompatible", "endpoint": {"url": "http://127.0.0.1:9/v1"}}
    )
    state = RouterState()
    state.snapshot = Snapshot(providers={"p": ProviderEntry("p", spec, ("http://x/v1",))})
    state.synced_at = time.monotonic()
    return state


async def _readyz(app: RouterApp) -> tuple[int, dict[str, Any]]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    reply = await app.readyz(Incoming({"type": "http"}, receive, sending.AfterReply()))
    return reply.status, orjson.loads(reply.body)


def _restarts(state: RouterState, task: str) -> float:
    value = state.meter.registry.get_sample_value(
        "signalbox_router_task_restarts_total", {"task": task}
    )
    return value or 0.0


async def test_a_crashing_task_is_restarted_counted_and_shown_in_readyz(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = _state()
    app = RouterApp(state)
    assert (await _readyz(app))[0] == 200

    runs: list[int] = []
    third, may_recover, recovered = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    async def task(health: supervision.Health) -> None:
        runs.append(1)
        if len(runs) == 3:
            third.set()
        if not may_recover.is_set():
            raise ValueError(f"bad value {SECRET}")
        health.ok()
        recovered.set()
        await asyncio.Event().wait()  # runs until cancelled

    supervisor = supervision.Supervisor(state.meter.registry, state.failing, sleep=sleep)
    assert _restarts(state, "watch") == 0
    caplog.set_level(logging.ERROR)
    running = supervisor.start("watch", task)
    try:
        await asyncio.wait_for(third.wait(), 5)
        assert _restarts(state, "watch") >= 2
        assert sleeps[:3] == [1.0, 2.0, 4.0], "the back-off doubles"
        status, body = await _readyz(app)
        assert status == 503
        assert body["ready"] is False
        assert "watch crashed (ValueError at test_supervision.py:" in body["reason"]
        assert "watch" in body["failing"]
        assert "background task watch crashed (ValueError" in caplog.text
        assert SECRET not in caplog.text, "the exception's message may quote a value"
        assert SECRET not in str(body)

        may_recover.set()
        await asyncio.wait_for(recovered.wait(), 5)
        assert "watch" not in state.failing
        assert (await _readyz(app))[0] == 200, "ready again once the task says it works"
    finally:
        running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_task_that_does_not_report_is_cleared_when_restarted() -> None:
    state = RouterState()
    attempts = 0
    second = asyncio.Event()
    seen_failing: list[bool] = []

    async def sleep(seconds: float) -> None:
        seen_failing.append("scrape" in state.failing)

    async def task(health: supervision.Health) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return  # a task that stops is restarted too
        second.set()
        await asyncio.Event().wait()

    supervisor = supervision.Supervisor(state.meter.registry, state.failing, sleep=sleep)
    running = supervisor.start("scrape", task, reports_health=False)
    await asyncio.wait_for(second.wait(), 5)
    assert seen_failing == [True], "failing while it waits to be restarted"
    assert "scrape" not in state.failing
    assert _restarts(state, "scrape") == 1
    running.cancel()


async def test_the_restart_metric_is_on_the_routers_registry() -> None:
    state = RouterState()
    supervision.Supervisor(state.meter.registry, state.failing)
    text = prom.generate_latest(state.meter.registry).decode()
    assert "# TYPE signalbox_router_task_restarts_total counter" in text


async def test_readyz_lists_problems_without_turning_unready() -> None:
    state = _state()
    state.problems = ("a.yaml: Secret creds: data.api-key is not valid base64",)
    status, body = await _readyz(RouterApp(state))
    assert status == 200
    assert body["problems"] == list(state.problems)
