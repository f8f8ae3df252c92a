"""What one request asks of the providers: its body, route, priority and controls, as the
forwarder and the attempts read them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signalbox_providers import dialects
from signalbox_providers.dialects import Kind
from signalbox_router.access_log import Access
from signalbox_router.asgi.sending import AfterReply
from signalbox_router.forwarding.controls import DEFAULT as DEFAULT_CONTROLS
from signalbox_router.forwarding.controls import Controls
from signalbox_router.limits.limiters import ProviderLimiter
from signalbox_router.limits.priority import RequestPriority
from signalbox_router.metering.estimates import estimate_tokens
from signalbox_router.request_trace import RequestTrace
from signalbox_router.routing.selection import Route


@dataclass
class Job:
    kind: Kind
    body: dict[str, Any]
    route: Route
    priority: RequestPriority
    stream: bool
    client_usage: bool
    raw: bytes | None = None  # the body as the client sent it
    size: int = 0  # bytes the client sent: a large body is translated off the event loop
    controls: Controls = DEFAULT_CONTROLS  # the client's x-signalbox-* headers
    due: float | None = None  # monotonic time the whole request must end by, if any
    # Another client API (``signalbox_providers.ingress``): wraps each provider's dialect.
    ingress: Callable[[dialects.Dialect], dialects.Dialect] | None = None
    # Where attempts leave what they report, to run once the answer is sent; None: at once.
    after_reply: AfterReply | None = None
    tenant: str | None = None  # whose client key asked (``request_reading.tenant``), if any
    access: Access | None = None  # the request's access-log line, which its attempts fill in
    trace: RequestTrace | None = None  # the request's span, when tracing is on

    @functools.cached_property
    def estimate(self) -> int:
        """Tokens the request may use, worked out only when a token limit needs it."""
        return estimate_tokens(self.body)

    def tokens_for(self, limiter: ProviderLimiter) -> int:
        return self.estimate if limiter.tokens is not None else 0


def job_for(
    kind: Kind,
    body: dict[str, Any],
    route: Route,
    ctl: Controls,
    raw: bytes | None = None,
    *,
    size: int | None = None,
    after_reply: AfterReply | None = None,
    tenant: str | None = None,
    access: Access | None = None,
    trace: RequestTrace | None = None,
) -> Job:
    stream = kind == "chat" and bool(body.get("stream"))
    usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return Job(
        kind,
        body,
        route,
        ctl.priority,
        stream,
        usage,
        raw,
        len(raw or b"") if size is None else size,
        ctl,
        after_reply=after_reply,
        tenant=tenant,
        access=access,
        trace=trace,
    )
