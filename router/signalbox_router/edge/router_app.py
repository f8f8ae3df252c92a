"""The router's HTTP face: a raw ASGI application (served by uvicorn).

Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/messages``,
``POST /v1/responses`` and ``POST /v1/completions`` (``ingress_routes``), ``GET /v1/models``,
``GET /v1/usage``, ``GET /v1/explain?model=…&capabilities=…``, ``GET /v1/providers?model=…``
(``provider_listing``), ``/healthz``, ``/readyz`` and ``/metrics`` (which takes a client key
like ``/v1/`` when client keys are set; Prometheus scrapes :class:`exposition.MetricsApp` on a
port of its own). Every error is in the OpenAI shape (on
``/v1/messages``, Anthropic's). A client key travels as a bearer token or in ``x-api-key``.
Raw ASGI keeps the per-request overhead to the few microseconds a pass-through can afford.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from signalbox_providers.dialects import Kind
from signalbox_router.asgi import replies, request_reading, sending
from signalbox_router.asgi.sending import Receive, Scope, Send
from signalbox_router.cache.response_cache import ResponseCache
from signalbox_router.edge import (
    exposition,
    ingress_routes,
    introspection,
    openai_request,
    provider_listing,
)
from signalbox_router.forwarding import controls
from signalbox_router.forwarding.deadlines import this_task
from signalbox_router.forwarding.failover import Forwarder
from signalbox_router.forwarding.jobs import job_for
from signalbox_router.routing import selection
from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
Hook = Callable[[], Awaitable[None]]


@dataclass
class Settings:
    max_body: int = 10 * 1024 * 1024
    client_keys: frozenset[str] | None = None  # None: no client authentication
    metrics_tokens: frozenset[str] | None = None  # for --metrics-port; None: open
    max_snapshot_age: float = 120.0


@dataclass
class RouterApp:
    state: RouterState
    settings: Settings = field(default_factory=Settings)
    forwarder: Forwarder | None = None
    cache: ResponseCache | None = None
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
        after_reply = scope[sending.AFTER_REPLY] = sending.AfterReply()
        try:
            await self._answer(scope, receive, send)
        finally:
            after_reply.run()

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reply = await self._dispatch(scope, receive)
        except asyncio.CancelledError:
            if scope.get(sending.CLIENT_GONE):  # see bounding: nobody is left to answer
                return
            raise
        except request_reading.Refused as refused:
            reply = ingress_routes.shaped(scope["path"], refused.reply)
        except Exception:  # a bug of ours: the client still gets an error in its API's shape
            log.exception("request to %s failed inside the router", scope.get("path"))
            reply = replies.error(500, "The router failed to handle this request.", code="internal")
            reply = ingress_routes.shaped(scope["path"], reply)
        if isinstance(reply, replies.StreamReply):
            await sending.send_stream(send, receive, reply)
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

    async def _dispatch(
        self, scope: Scope, receive: Receive
    ) -> replies.Reply | replies.StreamReply:
        method, path = scope["method"], scope["path"]
        route = _ROUTES.get(path)
        if route is None:
            return replies.error(404, f"Unknown path: {path}", code="unknown_url")
        wanted, handler = route
        if method != wanted:
            reply = replies.error(405, f"Use {wanted} for {path}", code="method_not_allowed")
            return ingress_routes.shaped(path, reply)
        if path.startswith("/v1/") or path == "/metrics":
            self._authenticate(scope)
        return await handler(self, scope, receive)

    def _authenticate(self, scope: Scope) -> None:
        keys = self.settings.client_keys
        if keys is None:
            return
        given = request_reading.client_key(scope)
        if not any(hmac.compare_digest(given, k.encode()) for k in keys):
            raise request_reading.Refused(
                replies.error(
                    401, "Missing or invalid API key for this router.", code="invalid_api_key"
                )
            )

    async def _model_call(
        self, scope: Scope, receive: Receive, kind: Kind
    ) -> replies.Reply | replies.StreamReply:
        scope[sending.TASK] = this_task()  # cancelled should the client leave
        ctl = controls.of_request(scope)
        raw, parsed = await request_reading.read_json(receive, self.settings.max_body)
        try:
            body = openai_request.validate(parsed, kind)
        except openai_request.InvalidRequest as exc:
            return _stamped(replies.error(400, str(exc), param=exc.param, code="invalid_request"))
        try:
            route = selection.route(
                body["model"],
                openai_request.needs(body, kind),
                self.state.snapshot,
                self.state.view(),
            )
        except selection.UnknownModel:
            return _stamped(
                replies.error(
                    404,
                    f"The model '{body['model']}' does not exist.",
                    code="model_not_found",
                    param="model",
                )
            )
        assert self.forwarder is not None, "the forwarder is set at startup"
        cache, snapshot = self.cache, self.state.snapshot
        look = cache.lookup(scope, body, route, snapshot) if cache and kind == "chat" else None
        if look is not None and cache is not None:
            kept = await cache.answer(look, body, route)
            if kept is not None:
                return _stamped(kept)
        job = job_for(kind, body, route, ctl, raw, after_reply=scope.get(sending.AFTER_REPLY))
        reply = await self.forwarder.forward(job)
        return _stamped(reply if look is None or cache is None else cache.keep(look, reply))

    def chat(
        self, scope: Scope, receive: Receive
    ) -> Awaitable[replies.Reply | replies.StreamReply]:
        return self._model_call(scope, receive, "chat")

    def embeddings(
        self, scope: Scope, receive: Receive
    ) -> Awaitable[replies.Reply | replies.StreamReply]:
        return self._model_call(scope, receive, "embeddings")

    async def models(self, scope: Scope, receive: Receive) -> replies.Reply:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "signalbox"}
            for m in self.state.snapshot.model_names()
        ]
        return replies.json_reply({"object": "list", "data": data})

    async def usage(self, scope: Scope, receive: Receive) -> replies.Reply:
        summary = self.state.meter.summary()
        if self.cache is not None and (self.cache.hits or self.cache.enabled):
            summary["cache"] = self.cache.savings()
        return replies.json_reply(summary)

    async def explain(self, scope: Scope, receive: Receive) -> replies.Reply:
        return introspection.explain(self.state, scope.get("query_string", b""))

    async def providers(self, scope: Scope, receive: Receive) -> replies.Reply:
        query = parse_qs(scope.get("query_string", b"").decode())
        model = (query.get("model") or [""])[0]
        try:
            return replies.json_reply(provider_listing.listing(self.state, model or None))
        except selection.UnknownModel:
            return replies.error(
                404, f"The model '{model}' does not exist.", code="model_not_found", param="model"
            )

    async def healthz(self, scope: Scope, receive: Receive) -> replies.Reply:
        return replies.json_reply({"status": "ok"})

    async def readyz(self, scope: Scope, receive: Receive) -> replies.Reply:
        return introspection.readiness(self.state, self.settings.max_snapshot_age)

    async def metrics(self, scope: Scope, receive: Receive) -> replies.Reply:
        return exposition.exposition(self.state)


Handler = Callable[[RouterApp, Scope, Receive], Awaitable[replies.Reply | replies.StreamReply]]
_ROUTES: dict[str, tuple[str, Handler]] = {
    "/v1/chat/completions": ("POST", RouterApp.chat),
    "/v1/embeddings": ("POST", RouterApp.embeddings),
    ingress_routes.MESSAGES_PATH: ("POST", ingress_routes.messages_route),
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


_UNROUTED = replies.signalbox_headers("", "", 0)


def _stamped(reply: replies.Reply | replies.StreamReply) -> replies.Reply | replies.StreamReply:
    """Every model response names provider, model and attempts; blank when none was tried."""
    for name, _ in reply.headers:
        if name == b"x-signalbox-provider":
            return reply  # a provider answered: all three headers are there
    names = {k for k, _ in reply.headers}
    reply.headers.extend((k, v) for k, v in _UNROUTED if k not in names)
    return reply
