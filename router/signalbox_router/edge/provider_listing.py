"""``GET /v1/providers``: every provider as this router process sees it right now.

The operator's status says how a provider answers its probes; this listing adds what only the
router knows: its local breaker, 429 cooling, the limits in use, requests in flight, the last
error class it met, and its own success rate and latency. With ``?model=`` the providers come in
the order a request for that model would try them (``selection.route``, the same ranking the
request path uses, never a second one), then those excluded for it with the reason; without a
model, usable ones first by priority. Reads only the router's own state, never the API server.
"""

from __future__ import annotations

import time
from typing import Any

from signalbox_router.routing import selection
from signalbox_router.routing.snapshot import ProviderEntry
from signalbox_router.state import RouterState


def listing(state: RouterState, model: str | None) -> dict[str, Any]:
    """The body of the reply; raises ``UnknownModel`` for a model nothing serves."""
    snap, now = state.snapshot, time.monotonic()
    rows: list[dict[str, Any]] = []
    head: dict[str, Any] = {"object": "list"}
    if model:
        route = selection.route(model, selection.Needs(), snap, state.view())
        head.update(model=model, policy=route.policy, strategy=route.strategy.value)
        seen: set[str] = set()
        for rank, cand in enumerate(route.ordered, start=1):
            entry = snap.providers.get(cand.provider)
            if entry is not None and cand.provider not in seen:
                seen.add(cand.provider)
                rows.append(_row(state, entry, now) | {"rank": rank, "eligible": True})
        for ex in route.excluded:
            entry = snap.providers.get(ex.provider)
            if entry is not None and ex.provider not in seen:
                seen.add(ex.provider)
                rows.append(_row(state, entry, now) | {"eligible": False, "reason": ex.reason})
        rest = [e for n, e in sorted(snap.providers.items()) if n not in seen]
        rows += [_row(state, e, now) | {"eligible": False, "reason": "NotInRoute"} for e in rest]
    else:
        entries = sorted(
            snap.providers.values(),
            key=lambda e: (
                not e.usable,
                state.breakers.state(e.name, now) != "Closed",
                e.spec.priority,
                e.name,
            ),
        )
        rows = [_row(state, e, now) for e in entries]
    return head | {"data": rows}


def _row(state: RouterState, entry: ProviderEntry, now: float) -> dict[str, Any]:
    name = entry.name
    return {
        "name": name,
        "type": entry.spec.type.value,
        "priority": entry.spec.priority,
        "ready": entry.ready,
        "operatorReason": entry.reason or None,
        "endpoints": len(entry.endpoints),
        "breaker": state.breakers.state(name, now),
        "cooling": state.breakers.cooling(name, now),
        "inFlight": state.in_flight.get(name, 0),
        "limits": _limits(state, entry, now),
        "lastError": state.last_error.get(name),
        "successRate": _round(state.success_rate.get(name)),
        "latencyMs": _round(_ms(state.latency.get(name))),
    }


def _limits(state: RouterState, entry: ProviderEntry, now: float) -> dict[str, Any] | None:
    spec = entry.spec.rate_limit
    if spec is None:
        return None
    limiter = state.limiter(entry)
    requests, tokens = limiter.requests, limiter.tokens
    return {
        "requestsPerMinute": spec.requests_per_minute,
        "tokensPerMinute": spec.tokens_per_minute,
        "maxConcurrency": spec.max_concurrency,
        "slotsInUse": limiter.in_flight,
        "requestWaitSeconds": _round(requests.wait(now, 1)) if requests is not None else 0.0,
        "tokensAvailableNow": tokens is None or tokens.wait(now, 1) == 0.0,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
