"""The router's HTTP face: a raw ASGI application (served by uvicorn).

Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/messages``,
``POST /v1/responses`` and ``POST /v1/completions`` (``ingress_routes``), ``GET /v1/models``,
``GET /v1/usage``, ``GET /v1/explain?model=…&capabilities=…``, ``GET /v1/providers?model=…``
(``provider_listing``), ``/healthz``, ``/readyz`` and ``/metrics`` (which takes a client key
like ``/v1/`` when client keys are set; Prometheus scrapes :class:`exposition.MetricsApp` on a
port of its own). Routes raise; every failure becomes a reply in one place
(``error_replies``), in the OpenAI shape (on ``/v1/messages``, Anthropic's). A client key
travels as a bearer token or in ``x-api-key``. Each request is handed to its route as an
``Incoming``; nothing of ours rides in the ASGI scope. Raw ASGI keeps the per-request overhead to
the few microseconds a pass-through can afford.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from signalbox_providers.dialects import Kind
from signalbox_router import access_log, logs
from signalbox_router.asgi import off_loop, replies, request_reading, sending
from signalbox_router.asgi.sending import Receive, Scope, Send
from signalbox_router.cache.response_cache import ResponseCache
from signalbox_router.edge import (
    error_replies,
    exposition,
    ingress_routes,
    introspection,
    openai_request,
    provider_listing,
)
from signalbox_router.failures import MethodNotAllowed, NotFound, Unauthorized
from signalbox_router.forwarding import controls
from signalbox_router.forwarding.attempts import CLIENT_CLOSED
from signalbox_router.forwarding.failover import Answer, Forwarder
from signalbox_router.forwarding.jobs import job_for
from signalbox_router.request_trace import RequestTrace, Tracing
from signalbox_router.routing import selection
from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
Hook = Callable[[], Awaitable[None]]


@dataclass
class RouterSettings:
    max_body: int = 10 * 1024 * 1024
    client_keys: frozenset[str] | None = None  # None: no client authentication
    metrics_tokens: frozenset[str] | None = None  # for --metrics-port; None: open
    max_snapshot_age: float = 120.0


@dataclass(slots=True)
class Incoming:
    """One request in flight, handed to its route explicitly: the ASGI scope and receive as
    uvicorn gave them, and the work that waits for its answer to be sent."""

    scope: Scope
    receive: Receive
    after_reply: sending.AfterReply
    request_id: str = "-"  # ``access_log.request_id``: sent back in ``x-request-id``
    tenant: str | None = None  # whose client key it carries, when clients authenticate
    access: access_log.Access | None = None  # a model route's: what its access line says
    trace: RequestTrace | None = None  # a model route's span, when tracing is on

    def route(
        self, state: RouterState, body: dict[str, Any], needs: selection.Needs
    ) -> selection.Route:
        """The providers for the model ``body`` names, noted on the access line (the model
        even when nothing serves it, and the policy that does) and on the request's span."""
        model = body["model"]
        if self.trace is not None:
            self.trace.asked(body)
        access = self.access
        if access is not None:
            access.model = model
        route = selection.route(model, needs, state.snapshot, state.view())
        if access is not None:
            access.policy = route.policy or ""
        return route


@dataclass
class RouterApp:
    state: RouterState
    settings: RouterSettings = field(default_factory=RouterSettings)
    forwarder: Forwarder | None = None
    cache: ResponseCache | None = None
    tracing: Tracing | None = None  # None: tracing is off
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Metric labels take only the names the current snapshot declares.
        self.state.meter.follow(lambda: self.state.snapshot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        rid = access_log.request_id(request_reading.header(scope, b"x-request-id"))
        named = logs.REQUEST_ID.set(rid)
        request = Incoming(scope, receive, sending.AfterReply(), rid)
        path = scope["path"]
        if path in _MODEL_ROUTES:
            request.access = access_log.Access(rid, scope["method"], path, time.monotonic())
            if self.tracing is not None:
                request.trace = self.tracing.request(scope["headers"], scope["method"], path)
        try:
            await self._answer(request, send)
        finally:
            request.after_reply.run()
            access = request.access
            if access is not None:
                access.status = access.status or CLIENT_CLOSED  # no answer: the client left
                self.state.meter.answered(path, access.model, access.status)
                access_log.write(access, time.monotonic())
                if request.trace is not None:
                    request.trace.end(access)
            logs.REQUEST_ID.reset(named)

    async def _answer(self, request: Incoming, send: Send) -> None:
        path = request.scope["path"]
        try:
            reply = await self._dispatch(request)
        except asyncio.CancelledError as cancelled:
            if cancelled.args == (sending.CLIENT_GONE,):  # see bounding: nobody to answer
                return
            raise
        except Exception as exc:  # every failure, ours too, in the shape of the route's API
            reply = error_replies.reply_for(exc, path, self.state.secrets())
            if path in _MODEL_ROUTES:
                reply = _stamped(reply)
        reply.headers.append((b"x-request-id", request.request_id.encode()))
        if request.access is not None:
            request.access.status = reply.status
        if isinstance(reply, replies.StreamReply):
            await sending.send_stream(send, request.receive, reply)
        else:
            await sending.send_reply(send, reply)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, request: Incoming) -> Answer:
        method, path = request.scope["method"], request.scope["path"]
        route = _ROUTES.get(path)
        if route is None:
            raise NotFound(f"Unknown path: {path}")
        wanted, handler = route
        if method != wanted:
            raise MethodNotAllowed(f"Use {wanted} for {path}")
        if path.startswith("/v1/") or path == "/metrics":
            request.tenant = self._authenticate(request.scope)
        reply = await handler(self, request)
        return _stamped(reply) if path in _MODEL_ROUTES else reply

    def _authenticate(self, scope: Scope) -> str | None:
        """The request's tenant when clients authenticate (None when they do not); raises
        Unauthorized for a key that is not one of the router's."""
        keys = self.settings.client_keys
        if keys is None:
            return None
        given = request_reading.client_key(scope)
        if not any(hmac.compare_digest(given, k.encode()) for k in keys):
            raise Unauthorized("Missing or invalid API key for this router.")
        return request_reading.tenant(scope)

    async def _model_call(self, request: Incoming, kind: Kind) -> Answer:
        ctl = controls.of_request(request.scope)
        raw = await request_reading.read_body(request.receive, self.settings.max_body)
        body, needs = await off_loop.run(len(raw), openai_request.read, raw, kind)
        route = request.route(self.state, body, needs)
        assert self.forwarder is not None, "the forwarder is set at startup"
        cache, snapshot = self.cache, self.state.snapshot
        look = None
        if cache is not None and kind == "chat":
            look = cache.lookup(request.scope, body, route, snapshot, request.tenant)
        if look is not None and cache is not None:
            kept = await cache.answer(look, body, route)
            if request.access is not None:
                request.access.cache = look.verdict if kept is None else "hit"
            if kept is not None:
                return kept
        job = job_for(
            kind,
            body,
            route,
            ctl,
            raw,
            after_reply=request.after_reply,
            tenant=request.tenant,
            access=request.access,
            trace=request.trace,
        )
        reply = await self.forwarder.forward(job)
        return reply if look is None or cache is None else cache.keep(look, reply)

    def chat(self, request: Incoming) -> Awaitable[Answer]:
        return self._model_call(request, "chat")

    def embeddings(self, request: Incoming) -> Awaitable[Answer]:
        return self._model_call(request, "embeddings")

    async def models(self, request: Incoming) -> Answer:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "signalbox"}
            for m in self.state.snapshot.model_names()
        ]
        return replies.json_reply({"object": "list", "data": data})

    async def usage(self, request: Incoming) -> Answer:
        """Everyone's usage; with client keys, only the asking key's own."""
        summary = self.state.meter.summary(request.tenant)
        if self.cache is not None and (self.cache.hits or self.cache.enabled):
            summary["cache"] = self.cache.savings(request.tenant)
        return replies.json_reply(summary)

    async def explain(self, request: Incoming) -> Answer:
        return introspection.explain(self.state, request.scope.get("query_string", b""))

    async def providers(self, request: Incoming) -> Answer:
        query = parse_qs(request.scope.get("query_string", b"").decode())
        model = (query.get("model") or [""])[0]
        return replies.json_reply(provider_listing.listing(self.state, model or None))

    async def healthz(self, request: Incoming) -> Answer:
        return replies.json_reply({"status": "ok"})

    async def readyz(self, request: Incoming) -> Answer:
        return introspection.readiness(self.state, self.settings.max_snapshot_age)

    async def metrics(self, request: Incoming) -> Answer:
        return exposition.exposition(self.state)


Handler = Callable[[RouterApp, Incoming], Awaitable[Answer]]
_ROUTES: dict[str, tuple[str, Handler]] = {
    "/v1/chat/completions": ("POST", RouterApp.chat),
    "/v1/embeddings": ("POST", RouterApp.embeddings),
    error_replies.MESSAGES_PATH: ("POST", ingress_routes.messages_route),
    "/v1/responses": ("POST", ingress_routes.responses_route),
    "/v1/completions": ("POST", ingress_routes.completions_route),
    "/v1/models": ("GET", RouterApp.models),
    "/v1/usage": ("GET", RouterApp.usage),
    "/v1/explain": ("GET", RouterApp.explain),
    "/v1/providers": ("GET", RouterApp.providers),
    "/healthz": ("GET", RouterApp.healthz),
    "/readyz": ("GET", RouterApp.readyz),
    "/metrics": ("GET", RouterApp.metrics),
}
# The routes that call a model: each of their replies names provider, model and attempts.
_MODEL_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/embeddings",
        error_replies.MESSAGES_PATH,
        "/v1/responses",
        "/v1/completions",
    }
)
_UNROUTED = replies.signalbox_headers("", "", 0)


def _stamped(reply: Answer) -> Answer:
    """A model route's reply names provider, model and attempts; blank when none was tried."""
    for name, _ in reply.headers:
        if name == b"x-signalbox-provider":
            return reply  # a provider answered: all three headers are there
    names = {k for k, _ in reply.headers}
    reply.headers.extend((k, v) for k, v in _UNROUTED if k not in names)
    return reply
