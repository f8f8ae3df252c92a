"""The routes for client APIs other than OpenAI chat: ``POST /v1/messages`` (Anthropic
Messages), ``POST /v1/responses`` (OpenAI Responses, stateless) and ``POST /v1/completions``
(legacy text completions).

Each reads its body at the edge (``signalbox_providers.ingress``), derives the capabilities it
needs, and hands the forwarder an ordinary chat job whose ``ingress`` wraps every provider's
dialect, so policies, failover, limits and metering are the chat path's own. A client API's
refusal of its body (``ingress.invalid.InvalidRequest``) becomes a 400 at the edge like every
other failure; on the Messages route every error is in Anthropic's shape, mid-stream ones
included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from signalbox_api.provider import Capability
from signalbox_providers import ingress
from signalbox_providers.translate import completions_to_openai, messages_to_chat, responses_to_chat
from signalbox_providers.translate.messages_to_chat import event, to_chat
from signalbox_router.asgi import off_loop, replies, request_reading
from signalbox_router.edge import openai_request
from signalbox_router.forwarding import controls
from signalbox_router.forwarding.failover import Answer
from signalbox_router.forwarding.jobs import job_for
from signalbox_router.routing import selection

if TYPE_CHECKING:
    from signalbox_router.edge.router_app import Incoming, RouterApp

_STREAM_ERROR = b'data: {"error"'  # how ``streaming.relay`` ends a failed stream


async def messages_route(app: RouterApp, request: Incoming) -> Answer:
    """``POST /v1/messages``; a stream's closing error event is in Anthropic's shape too (the
    edge shapes every other error)."""
    ctl = controls.of_request(request.scope)
    raw = await request_reading.read_body(request.receive, app.settings.max_body)
    body, needs, wrap = await off_loop.run(len(raw), _read_messages, raw)
    answer = await _forward(app, request, body, needs, ctl, wrap=wrap, size=len(raw))
    return anthropic_shaped(answer)


async def responses_route(app: RouterApp, request: Incoming) -> Answer:
    ctl = controls.of_request(request.scope)
    raw = await request_reading.read_body(request.receive, app.settings.max_body)
    body, needs, wrap = await off_loop.run(len(raw), _read_responses, raw)
    return await _forward(app, request, body, needs, ctl, wrap=wrap, size=len(raw))


async def completions_route(app: RouterApp, request: Incoming) -> Answer:
    ctl = controls.of_request(request.scope)
    raw = await request_reading.read_body(request.receive, app.settings.max_body)
    body, needs = await off_loop.run(len(raw), _read_completions, raw)
    return await _forward(
        app, request, body, needs, ctl, wrap=ingress.for_completions, size=len(raw)
    )


# Reading each client API's body: pure steps, which a large body takes off the event loop.
_Read = tuple[dict[str, Any], selection.Needs, ingress.Wrap]


def _read_messages(raw: bytes) -> _Read:
    parsed = request_reading.parse_json(raw)
    body = to_chat(parsed)
    return body, openai_request.needs(body, "chat"), ingress.for_messages(parsed)


def _read_responses(raw: bytes) -> _Read:
    parsed = request_reading.parse_json(raw)
    body = responses_to_chat.to_chat(parsed)
    return body, openai_request.needs(body, "chat"), ingress.for_responses(parsed)


def _read_completions(raw: bytes) -> tuple[dict[str, Any], selection.Needs]:
    body = completions_to_openai.validate(request_reading.parse_json(raw))
    caps = {Capability.COMPLETIONS} | ({Capability.STREAMING} if body.get("stream") else set())
    return body, selection.Needs(frozenset(caps), completions_to_openai.prompt_chars(body) // 4)


async def _forward(
    app: RouterApp,
    request: Incoming,
    body: dict[str, Any],
    needs: selection.Needs,
    ctl: controls.Controls,
    *,
    wrap: ingress.Wrap,
    size: int,
) -> Answer:
    route = request.route(app.state, body, needs)
    assert app.forwarder is not None, "the forwarder is set at startup"
    job = job_for(
        "chat",
        body,
        route,
        ctl,
        size=size,
        after_reply=request.after_reply,
        tenant=request.tenant,
        access=request.access,
        trace=request.trace,
    )
    job.ingress = wrap
    return await app.forwarder.forward(job)


def anthropic_shaped(reply: Answer) -> Answer:
    """A stream's closing error event (OpenAI-shaped, as ``streaming.relay`` ends one) in
    Anthropic's shape."""
    if isinstance(reply, replies.StreamReply):
        reply.chunks = _anthropic_errors(reply.chunks)
    return reply


async def _anthropic_errors(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream's chunks, its closing error event (OpenAI-shaped) as Anthropic's."""
    try:
        async for chunk in chunks:
            if chunk.startswith(_STREAM_ERROR):
                error = orjson.loads(chunk[6:])["error"]
                payload = messages_to_chat.error_body(502, str(error.get("message")))
                payload["error"]["type"] = "api_error"
                yield event("error", payload)
            else:
                yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
