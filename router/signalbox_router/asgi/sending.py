"""How replies go out over ASGI: a complete reply, or a stream sent while watching for the
client to leave (when it does, the stream is cancelled at once: its upstream closed, its
attempt booked as the client's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from signalbox_router.asgi import replies

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# The message a request's task is cancelled with when its client went away before an answer
# started (edge.bounding): nobody is left to answer.
CLIENT_GONE = "signalbox: the client went away"


class AfterReply:
    """Work that waits until the request's answer is sent, so it does not delay it: what an
    attempt reports (metrics, the provider's success rate and latency). The server runs it
    once the answer is out, however the request ended; work added after that runs at once."""

    __slots__ = ("_done", "_work")

    def __init__(self) -> None:
        self._work: list[Callable[[], None]] = []
        self._done = False

    def add(self, work: Callable[[], None]) -> None:
        if self._done:
            work()
        else:
            self._work.append(work)

    def run(self) -> None:
        self._done = True
        for work in self._work:
            try:
                work()
            except Exception:  # a bug of ours: the rest still runs
                log.exception("bookkeeping after a reply failed")
        self._work.clear()


async def send_reply(send: Send, reply: replies.Reply) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def send_stream(send: Send, receive: Receive, reply: replies.StreamReply) -> None:
    """Send a stream while watching for the client to leave; when it does, the stream is
    cancelled at once (its upstream closed, its attempt booked as the client's)."""
    pump = asyncio.ensure_future(_pump(send, reply))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
    finally:
        gone.cancel()
        if not pump.done():
            pump.cancel()
        reply.close()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(send: Send, reply: replies.StreamReply) -> None:
    chunks = reply.chunks
    try:
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
        )
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
