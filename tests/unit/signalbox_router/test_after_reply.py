"""What an attempt reports waits until the client's answer is sent; what it holds does not.

The application runs in process over a real HTTP upstream (the fake provider on loopback); the
ASGI ``send`` it is given looks at the router's state at the moment the answer's body goes out.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from signalbox_fake import FakeProvider
from signalbox_router.asgi import sending
from signalbox_router.edge.router_app import RouterApp
from signalbox_router.forwarding import attempts, exchange
from signalbox_router.forwarding.failover import Forwarder
from signalbox_router.sources import manifests
from signalbox_router.state import RouterState
from tests.support.router import policy, provider
from tests.unit.signalbox_router.conftest import MODEL


def _app(folder: Path, fake: FakeProvider) -> RouterApp:
    docs = [
        provider(
            "up",
            "OpenAICompatible",
            fake.base_url,
            models=[MODEL],
            rateLimit={"maxConcurrency": 1},
        ),
        policy("chat", [MODEL], ["up"]),
    ]
    (folder / "docs.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    state = RouterState()
    state.snapshot = manifests.load(folder, None)
    return RouterApp(state)


def _recorder(sent: list[MutableMapping[str, Any]]) -> Any:
    """An ASGI ``send`` that keeps what it is given."""

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    return send


def _counted(state: RouterState) -> int:
    return sum(row["request_count"] for row in state.meter.summary()["data"])


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }


async def _receive() -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}


async def test_reports_wait_for_the_answer_and_capacity_comes_back_before_it(
    tmp_path: Path, fake: FakeProvider
) -> None:
    app = _app(tmp_path, fake)
    state = app.state
    seen: dict[str, Any] = {}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
        else:
            seen.update(
                counted=_counted(state),
                slots=state.slots_in_use("up"),
                in_flight=state.in_flight.get("up"),
                latency_known="up" in state.latency,
            )

    async with exchange.session() as session:
        app.forwarder = Forwarder(session, state)
        await app(_scope(), _receive, send)
    assert seen == {
        "status": 200,
        "counted": 0,  # not yet reported when the body went out
        "slots": 0,  # but the limiter slot was already back
        "in_flight": 0,
        "latency_known": False,
    }
    assert _counted(state) == 1  # reported by the time the application returned
    assert "up" in state.latency


async def test_a_client_gone_while_the_answer_is_sent_still_reports_the_providers_success(
    tmp_path: Path, fake: FakeProvider
) -> None:
    app = _app(tmp_path, fake)
    scope = _scope()

    async def send(message: MutableMapping[str, Any]) -> None:
        raise asyncio.CancelledError(sending.CLIENT_GONE)  # as the bounded protocol cancels

    async with exchange.session() as session:
        app.forwarder = Forwarder(session, app.state)
        with pytest.raises(asyncio.CancelledError):  # its answer was being sent: it goes on up
            await app(scope, _receive, send)
    codes = {row["model"]: row["request_count"] for row in app.state.meter.summary()["data"]}
    assert codes == {MODEL: 1}
    assert app.state.slots_in_use("up") == 0


def test_after_reply_runs_its_work_in_order_and_past_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []
    after = sending.AfterReply()
    after.add(lambda: done.append("first"))
    after.add(lambda: 1 // 0 and None)
    after.add(lambda: done.append("third"))
    assert done == []
    with caplog.at_level(logging.ERROR):
        after.run()
    assert done == ["first", "third"]
    assert "bookkeeping after a reply failed" in caplog.text
    after.add(lambda: done.append("late"))  # the answer is out: no reason to wait
    assert done == ["first", "third", "late"]
    after.run()
    assert done == ["first", "third", "late"]  # nothing runs twice


def _broken(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("a bug of ours")


async def test_an_attempt_gives_back_its_in_flight_count_even_when_the_limiters_books_fail(
    tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(tmp_path, fake)
    sent: list[MutableMapping[str, Any]] = []
    async with exchange.session() as session:
        app.forwarder = Forwarder(session, app.state)
        limiter = app.state.limiter(app.state.snapshot.providers["up"])
        monkeypatch.setattr(limiter, "release", _broken)
        await app(_scope(), _receive, _recorder(sent))
    assert sent[0]["status"] == 500  # an OpenAI-shaped answer to our own bug
    assert app.state.in_flight.get("up") == 0


async def test_a_bug_of_ours_in_a_stream_ends_it_with_an_error_event_and_holds_nothing(
    tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(tmp_path, fake)
    sent: list[MutableMapping[str, Any]] = []
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    requests = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # a client that stays to the end
        return {}

    monkeypatch.setattr(attempts.Report, "success", _broken)
    async with exchange.session() as session:
        app.forwarder = Forwarder(session, app.state)
        await app(_scope(), receive, _recorder(sent))
    assert sent[0]["status"] == 200
    streamed = b"".join(m.get("body", b"") for m in sent[1:])
    last = json.loads(streamed.strip().splitlines()[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "internal"
    assert app.state.in_flight.get("up") == 0
    assert app.state.slots_in_use("up") == 0
