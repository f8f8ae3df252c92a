"""How replies go out over ASGI: a complete reply, or a stream sent while watching for the
client to leave (when it does, the stream is cancelled at once: its upstream closed, its
attempt booked as the client's)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from signalbox_router import replies

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# Scope keys between the connection and the application: the task working on a request, and
# the mark that its client went away before an answer started (the task is then cancelled).
TASK = "signalbox.task"
CLIENT_GONE = "signalbox.client_gone"


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
