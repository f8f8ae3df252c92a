"""An answer's head leaves with the start of its body: one write, not two.

First the transport alone, then the router's bounded protocol serving over real loopback HTTP
with a recording transport under it: each complete answer is one write, and answers with no
body in the same step (HEAD, a stream's later events) still arrive whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from signalbox_router.asgi.coalescing import HeadWithBody
from signalbox_router.edge import bounding


class Recording(asyncio.Transport):
    """Records writes; with ``inner``, passes everything on to it."""

    def __init__(self, inner: asyncio.Transport | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        if self.inner is not None:
            self.inner.write(data)

    def close(self) -> None:
        self.events.append("close")
        self.closing = True
        if self.inner is not None:
            self.inner.close()

    def write_eof(self) -> None:
        self.events.append("eof")

    def abort(self) -> None:
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing if self.inner is None else self.inner.is_closing()

    def __getattribute__(self, name: str) -> Any:
        if name in {"get_extra_info", "pause_reading", "resume_reading", "set_protocol"}:
            inner = object.__getattribute__(self, "inner")
            if inner is not None:
                return getattr(inner, name)
        return object.__getattribute__(self, name)


async def test_a_held_head_leaves_with_the_next_write() -> None:
    raw = Recording()
    out = HeadWithBody(raw, asyncio.get_running_loop())
    out.write(b"before ")  # nothing held: straight through
    out.hold()
    out.write(b"HEAD ")
    assert raw.writes == [b"before "]
    out.write(b"BODY")
    out.write(b" more")
    assert raw.writes == [b"before ", b"HEAD BODY", b" more"]
    await asyncio.sleep(0)  # the end-of-step flush finds nothing left
    assert raw.writes == [b"before ", b"HEAD BODY", b" more"]


async def test_a_head_with_no_body_leaves_at_the_end_of_the_step() -> None:
    raw = Recording()
    out = HeadWithBody(raw, asyncio.get_running_loop())
    out.hold()
    out.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]


async def test_closing_sends_what_is_held_first_and_abort_drops_it() -> None:
    raw = Recording()
    out = HeadWithBody(raw, asyncio.get_running_loop())
    out.hold()
    out.write(b"head")
    out.write_eof()
    out.close()
    assert (raw.writes, raw.events) == ([b"head"], ["eof", "close"])
    dropped = Recording()
    out = HeadWithBody(dropped, asyncio.get_running_loop())
    out.hold()
    out.write(b"head")
    out.abort()
    await asyncio.sleep(0)
    assert (dropped.writes, dropped.events) == ([], ["abort"])


async def _app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"answer": "%s"}' % scope["path"].encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, list[Recording]]]:
    """The app behind the bounded protocol on loopback; each connection's recording."""
    protocol = bounding.protocol_for(bounding.ConnectionLimits())
    config = uvicorn.Config(_app, http=protocol, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    recordings: list[Recording] = []

    def connection() -> asyncio.Protocol:
        served = protocol(config=config, server_state=state, app_state={})
        made = served.connection_made

        def recorded(transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            recordings.append(Recording(transport))
            made(recordings[-1])

        served.connection_made = recorded  # type: ignore[method-assign]
        return served

    server = await asyncio.get_running_loop().create_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", recordings
    finally:
        server.close()
        for conn in list(state.connections):
            conn.shutdown()
        await server.wait_closed()


async def test_each_complete_answer_is_one_write(served: tuple[str, list[Recording]]) -> None:
    url, recordings = served
    async with httpx.AsyncClient(base_url=url) as client:
        for path in ("/a", "/b", "/c"):  # one keep-alive connection
            response = await client.post(path, json={})
            assert response.json() == {"answer": path}
        head = await client.head("/d")
        assert head.status_code == 200
        assert head.content == b""
    [connection] = recordings
    answers = [w for w in connection.writes if w.startswith(b"HTTP/1.1 ")]
    assert len(answers) == 4
    for path, write in zip(("/a", "/b", "/c"), answers, strict=False):
        assert write.endswith(b'{"answer": "%s"}' % path.encode())  # head and body together
    assert connection.writes[:3] == answers[:3]  # and nothing else was written for them


async def test_a_stream_starts_with_its_head_and_first_event_and_arrives_whole(
    served: tuple[str, list[Recording]],
) -> None:
    url, recordings = served
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/stream")
    assert response.text == "part0;part1;part2;"
    [connection] = recordings
    first = connection.writes[0]
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert first.endswith(b"part0;\r\n")
    assert len(connection.writes) == 4  # the later events as they come, then the last chunk
