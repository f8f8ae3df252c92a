"""A large body is parsed and translated off the event loop, so the loop keeps answering.

Each check gates the step with a ``threading.Event`` that only the event loop sets: a step run
on the loop's own thread would wait for it in vain (the loop cannot run while it waits), and the
check fails; run in a worker thread, the step sees the loop set it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider
from signalbox_router.asgi import off_loop, request_reading
from signalbox_router.edge.router_app import RouterApp
from signalbox_router.forwarding import exchange, failover
from signalbox_router.forwarding.failover import Forwarder
from signalbox_router.sources import manifests
from signalbox_router.state import RouterState
from tests.support.router import policy, provider
from tests.unit.signalbox_router.conftest import MODEL


def _app(folder: Path, fake: FakeProvider) -> RouterApp:
    docs = [
        provider("up", "OpenAICompatible", fake.base_url, models=[MODEL]),
        policy("chat", [MODEL], ["up"]),
    ]
    (folder / "docs.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    state = RouterState()
    state.snapshot = manifests.load(folder, None)
    return RouterApp(state)


async def test_a_small_step_runs_in_place_and_a_large_one_in_a_worker_thread() -> None:
    here = threading.get_ident()
    assert await off_loop.run(off_loop.LARGE - 1, threading.get_ident) == here
    assert await off_loop.run(off_loop.LARGE, threading.get_ident) != here
    with pytest.raises(ZeroDivisionError):  # a step's failure is the caller's
        await off_loop.run(off_loop.LARGE, lambda: 1 // 0)


def _gated(step: Callable[..., Any], waits: list[bool]) -> Callable[..., Any]:
    """``step``, first waiting (2 s at most) for the event loop to open the gate."""
    loop = asyncio.get_running_loop()

    def gated(*args: Any, **kwargs: Any) -> Any:
        gate = threading.Event()
        loop.call_soon_threadsafe(gate.set)
        waits.append(gate.wait(2))
        return step(*args, **kwargs)

    return gated


def _many_messages(path: str) -> bytes:
    """A body of tens of thousands of small messages, past ``off_loop.LARGE``, for ``path``."""
    turns = [{"role": "user", "content": "a short turn"}] * 20_000
    body: dict[str, Any] = {"model": MODEL}
    if path == "/v1/responses":
        body["input"] = turns
    else:
        body["messages"] = turns
    if path == "/v1/messages":
        body["max_tokens"] = 16
    raw = json.dumps(body).encode()
    assert len(raw) >= off_loop.LARGE
    return raw


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_a_large_body_is_parsed_and_translated_while_the_loop_runs(
    tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    parsed: list[bool] = []
    translated: list[bool] = []
    monkeypatch.setattr(request_reading, "parse_json", _gated(request_reading.parse_json, parsed))
    monkeypatch.setattr(failover, "_translated", _gated(failover._translated, translated))
    app = _app(tmp_path, fake)
    raw = _many_messages(path)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    async with exchange.session() as session:
        app.forwarder = Forwarder(session, app.state)
        await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent
    assert parsed == [True], "the body was parsed on the event loop's thread"
    assert translated == [True], "the request was translated on the event loop's thread"
