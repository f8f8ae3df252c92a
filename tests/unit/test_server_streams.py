"""How the router's ASGI face sends a stream: the first chunk goes with the headers, and the
stream's clean-up (the upstream released, the attempt booked) runs however the sending ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from signalbox_router import replies
from signalbox_router.server import _send_stream


class Stream:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.cleaned_up = False

    async def run(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                yield chunk
        finally:
            self.cleaned_up = True


async def test_a_stream_is_sent_whole_and_cleaned_up() -> None:
    stream, sent = Stream(b"data: 1\n\n", b"data: 2\n\n"), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _send_stream(send, replies.StreamReply(stream.run(), [(b"x", b"y")]))
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert sent[0]["headers"] == [(b"x", b"y")]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]
    assert stream.cleaned_up


async def test_a_stream_whose_headers_cannot_be_sent_is_still_cleaned_up() -> None:
    stream = Stream(b"data: 1\n\n", b"data: 2\n\n")

    async def send(message: dict[str, Any]) -> None:
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        await _send_stream(send, replies.StreamReply(stream.run()))
    assert stream.cleaned_up


async def test_an_empty_stream_still_ends_the_response() -> None:
    stream, sent = Stream(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _send_stream(send, replies.StreamReply(stream.run()))
    assert [(m["type"], m.get("body")) for m in sent] == [
        ("http.response.start", None),
        ("http.response.body", b""),
    ]
    assert stream.cleaned_up
