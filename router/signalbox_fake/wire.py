"""Small HTTP helpers shared by the fake provider's wire modules."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from signalbox_fake.state import FakeState

STATE: web.AppKey[FakeState] = web.AppKey("state", FakeState)
ERROR_BODY: web.AppKey[Callable[[int, str], dict[str, Any]]] = web.AppKey("error_body")


class BadRequest(Exception):
    """The request is malformed; answered with a 400 in the flavor's error shape."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def state_of(request: web.Request) -> FakeState:
    return request.app[STATE]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or BadRequest."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def require_model(state: FakeState, body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    if model not in state.models:
        raise BadRequest(
            f"The model `{model}` does not exist or you do not have access to it.", 404
        )
    return model


def now() -> int:
    return int(time.time())


def sse_data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def sse_event(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    return resp


async def send_chunks(request: web.Request, resp: web.StreamResponse, chunks: list[bytes]) -> None:
    """Write chunks, honouring the cut-stream fault by dropping the connection midway, the
    stall fault by going silent midway and the pacing knob by a pause before every chunk but
    the first (a pause, not a schedule: chunks that come late never come in a burst)."""
    state = state_of(request)
    cut, stall = state.faults.cut_stream_after, state.faults.stall_stream_after
    interval = state.faults.chunk_interval
    for i, chunk in enumerate(chunks):
        if interval and i:
            await asyncio.sleep(interval)
        if cut is not None and i >= cut:
            if request.transport is not None:
                request.transport.abort()  # the client sees an incomplete chunked body
            return
        if i == stall and state.unhang is not None:
            state.unhang.clear()
            await state.unhang.wait()  # until the faults are changed or cleared
        await resp.write(chunk)
    await resp.write_eof()
