"""The router's metrics: the Prometheus exposition, and an app that serves only that, for a
port Prometheus scrapes without a client key."""

from __future__ import annotations

from dataclasses import dataclass

import prometheus_client as prom

from signalbox_router import replies, sending
from signalbox_router.sending import Receive, Scope, Send
from signalbox_router.state import RouterState


@dataclass
class MetricsApp:
    """``GET /metrics`` alone, for a port Prometheus scrapes without a client key."""

    state: RouterState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            reply = replies.error(404, f"Unknown path: {scope['path']}", code="unknown_url")
        elif scope["method"] != "GET":
            reply = replies.error(405, "Use GET for /metrics", code="method_not_allowed")
        else:
            reply = exposition(self.state)
        await sending.send_reply(send, reply)


def exposition(state: RouterState) -> replies.Reply:
    return replies.Reply(
        200,
        prom.generate_latest(state.meter.registry),
        [(b"content-type", prom.CONTENT_TYPE_LATEST.encode())],
    )
