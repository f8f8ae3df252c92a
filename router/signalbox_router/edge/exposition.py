"""The router's metrics: the Prometheus exposition, and an app that serves only that, for a
port Prometheus scrapes without a client key (with a token of its own off loopback)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import prometheus_client as prom

from signalbox_router.asgi import replies, request_reading, sending
from signalbox_router.asgi.sending import Receive, Scope, Send
from signalbox_router.edge import error_replies
from signalbox_router.failures import MethodNotAllowed, NotFound, Unauthorized
from signalbox_router.state import RouterState


@dataclass
class MetricsApp:
    """``GET /metrics`` alone, for a port Prometheus scrapes without a client key; with
    ``tokens``, only for a bearer token among them."""

    state: RouterState
    tokens: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            if self.tokens is not None and not self._authorized(scope):
                raise Unauthorized("Missing or invalid metrics token.")
            if scope["path"] != "/metrics":
                raise NotFound(f"Unknown path: {scope['path']}")
            if scope["method"] != "GET":
                raise MethodNotAllowed("Use GET for /metrics")
            reply = exposition(self.state)
        except Exception as exc:
            reply = error_replies.reply_for(exc, scope["path"])
        await sending.send_reply(send, reply)

    def _authorized(self, scope: Scope) -> bool:
        given = request_reading.client_key(scope)
        return any(hmac.compare_digest(given, t.encode()) for t in self.tokens or ())


def exposition(state: RouterState) -> replies.Reply:
    return replies.Reply(
        200,
        prom.generate_latest(state.meter.registry),
        [(b"content-type", prom.CONTENT_TYPE_LATEST.encode())],
    )
