"""The Messages route's reshaping of streams: a failed stream's closing event in Anthropic's
shape (test_error_replies.py holds the same for every other error)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import orjson

from signalbox_router.asgi import replies
from signalbox_router.edge import ingress_routes


def test_success_left_alone() -> None:
    ok = replies.json_reply({"type": "message"})
    assert ingress_routes.anthropic_shaped(ok) is ok


async def test_stream_error_event_reshaped() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'event: ping\ndata: {"type":"ping"}\n\n'
        error = replies.error_body(502, "upstream stream failed: x", code="upstream_stream_error")
        yield b"data: " + orjson.dumps(error) + b"\n\n"  # as streaming.relay ends a stream

    reply = ingress_routes.anthropic_shaped(replies.StreamReply(chunks()))
    assert isinstance(reply, replies.StreamReply)
    out = [c async for c in reply.chunks]
    assert out[0].startswith(b"event: ping")
    name, data = out[1].decode().strip().split("\n")
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream stream failed: x"},
    }
