"""The routes for client APIs other than OpenAI chat: ``POST /v1/messages`` (Anthropic
Messages), ``POST /v1/responses`` (OpenAI Responses, stateless) and ``POST /v1/completions``
(legacy text completions).

Each reads its body at the edge (``signalbox_providers.ingress``), derives the capabilities it
needs, and hands the forwarder an ordinary chat job whose ``ingress`` wraps every provider's
dialect, so policies, failover, limits and metering are the chat path's own. Every error on the
Messages route is in Anthropic's shape, mid-stream errors included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from signalbox_api.provider import Capability
from signalbox_providers.ingress import completions, messages, responses_request, wrapping
from signalbox_providers.ingress.messages_request import InvalidMessages, to_chat
from signalbox_providers.ingress.messages_stream import event
from signalbox_router.asgi import replies, request_reading, sending
from signalbox_router.asgi.sending import Receive, Scope
from signalbox_router.edge import openai_request
from signalbox_router.forwarding import controls
from signalbox_router.forwarding.deadlines import this_task
from signalbox_router.forwarding.jobs import job_for
from signalbox_router.routing import selection

if TYPE_CHECKING:
    from signalbox_router.edge.router_app import RouterApp

Answer = replies.Reply | replies.StreamReply
MESSAGES_PATH = "/v1/messages"
_UNROUTED = replies.signalbox_headers("", "", 0)
_STREAM_ERROR = b'data: {"error"'  # how ``streaming.relay`` ends a failed stream


async def messages_route(app: RouterApp, scope: Scope, receive: Receive) -> Answer:
    try:
        reply = await _messages(app, scope, receive)
    except request_reading.Refused as refused:
        reply = refused.reply
    return anthropic_shaped(reply)


async def _messages(app: RouterApp, scope: Scope, receive: Receive) -> Answer:
    scope[sending.TASK] = this_task()  # cancelled should the client leave
    ctl = controls.of_request(scope)
    _, parsed = await request_reading.read_json(receive, app.settings.max_body)
    try:
        body = to_chat(parsed)
    except InvalidMessages as exc:
        return replies.error(400, str(exc), param=exc.param, code="invalid_request")
    needs = openai_request.needs(body, "chat")
    return await _forward(app, scope, body, needs, ctl, ingress=wrapping.for_messages(parsed))


async def responses_route(app: RouterApp, scope: Scope, receive: Receive) -> Answer:
    scope[sending.TASK] = this_task()
    ctl = controls.of_request(scope)
    _, parsed = await request_reading.read_json(receive, app.settings.max_body)
    try:
        body = responses_request.to_chat(parsed)
    except responses_request.InvalidResponses as exc:
        return replies.error(400, str(exc), param=exc.param, code="invalid_request")
    needs = openai_request.needs(body, "chat")
    return await _forward(app, scope, body, needs, ctl, ingress=wrapping.for_responses(parsed))


async def completions_route(app: RouterApp, scope: Scope, receive: Receive) -> Answer:
    scope[sending.TASK] = this_task()
    ctl = controls.of_request(scope)
    _, parsed = await request_reading.read_json(receive, app.settings.max_body)
    try:
        body = completions.validate(parsed)
    except completions.InvalidCompletion as exc:
        return replies.error(400, str(exc), param=exc.param, code="invalid_request")
    caps = {Capability.COMPLETIONS} | ({Capability.STREAMING} if body.get("stream") else set())
    needs = selection.Needs(frozenset(caps), completions.prompt_chars(body) // 4)
    return await _forward(app, scope, body, needs, ctl, ingress=wrapping.for_completions)


async def _forward(
    app: RouterApp,
    scope: Scope,
    body: dict[str, Any],
    needs: selection.Needs,
    ctl: controls.Controls,
    *,
    ingress: wrapping.Wrap,
) -> Answer:
    try:
        route = selection.route(body["model"], needs, app.state.snapshot, app.state.view())
    except selection.UnknownModel:
        message = f"The model '{body['model']}' does not exist."
        return _stamped(replies.error(404, message, code="model_not_found", param="model"))
    assert app.forwarder is not None, "the forwarder is set at startup"
    job = job_for("chat", body, route, ctl, after_reply=scope.get(sending.AFTER_REPLY))
    job.ingress = ingress
    return _stamped(await app.forwarder.forward(job))


def _stamped(reply: Answer) -> Answer:
    """As the chat route: every model response names provider, model and attempts."""
    names = {k for k, _ in reply.headers}
    if b"x-signalbox-provider" not in names:
        reply.headers.extend((k, v) for k, v in _UNROUTED if k not in names)
    return reply


def shaped(path: str, reply: replies.Reply) -> replies.Reply:
    """An error the server raised before a route ran, in the shape of the route's API."""
    return anthropic_reply(reply) if path == MESSAGES_PATH else reply


def anthropic_shaped(reply: Answer) -> Answer:
    if isinstance(reply, replies.StreamReply):
        reply.chunks = _anthropic_errors(reply.chunks)
        return reply
    return anthropic_reply(reply)


def anthropic_reply(reply: replies.Reply) -> replies.Reply:
    if reply.status < 400:
        return reply
    try:
        parsed = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        parsed = None
    body = orjson.dumps(messages.from_chat_error(reply.status, parsed))
    return replies.Reply(reply.status, body, reply.headers)


async def _anthropic_errors(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream's chunks, its closing error event (OpenAI-shaped) as Anthropic's."""
    try:
        async for chunk in chunks:
            if chunk.startswith(_STREAM_ERROR):
                error = orjson.loads(chunk[6:])["error"]
                payload = messages.error_body(502, str(error.get("message")))
                payload["error"]["type"] = "api_error"
                yield event("error", payload)
            else:
                yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
