"""How the router's ASGI face sends a stream: the stream's clean-up (the upstream released, the
attempt booked) runs however the sending ends, a client that leaves cancels it at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signalbox_router.asgi import replies
from signalbox_router.asgi.sending import send_stream as _send_stream


class Stream:
    def __init__(self, *chunks: bytes, hang: bool = False) -> None:
        self.chunks, self.hang = chunks, hang
        self.cleaned_up = self.closed = False

    async def run(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                yield chunk
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.cleaned_up = True

    def reply(self, headers: list[tuple[bytes, bytes]] | None = None) -> replies.StreamReply:
        return replies.StreamReply(self.run(), headers or [], self.close)

    def close(self) -> None:
        self.closed = True


async def stay(_: Any = None) -> dict[str, Any]:
    """A client that stays until the end."""
    await asyncio.Event().wait()
    return {}


async def test_a_stream_is_sent_whole_and_cleaned_up() -> None:
    stream, sent = Stream(b"data: 1\n\n", b"data: 2\n\n"), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _send_stream(send, stay, stream.reply([(b"x", b"y")]))
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert sent[0]["headers"] == [(b"x", b"y")]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]
    assert stream.cleaned_up
    assert stream.closed


async def test_a_stream_whose_headers_cannot_be_sent_is_still_cleaned_up() -> None:
    stream = Stream(b"data: 1\n\n", b"data: 2\n\n")

    async def send(message: dict[str, Any]) -> None:
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        await _send_stream(send, stay, stream.reply())
    assert stream.closed  # never started, so its own clean-up never ran: the owner's did


async def test_an_empty_stream_still_ends_the_response() -> None:
    stream, sent = Stream(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _send_stream(send, stay, stream.reply())
    assert [(m["type"], m.get("body")) for m in sent] == [
        ("http.response.start", None),
        ("http.response.body", b""),
    ]
    assert stream.cleaned_up
    assert stream.closed


async def test_a_client_that_leaves_cancels_the_stream_at_once() -> None:
    stream, sent = Stream(b"data: 1\n\n", hang=True), []
    left = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            left.set()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    await asyncio.wait_for(_send_stream(send, receive, stream.reply()), timeout=5)
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n"]
    assert stream.cleaned_up
    assert stream.closed
