"""What the router tells about itself: ``/v1/explain`` (how a model's requests would be routed
now, and why a provider is left out) and ``/readyz`` (whether it can serve, and if not why)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from signalbox_api.provider import Capability
from signalbox_router.asgi import replies
from signalbox_router.failures import BadRequest
from signalbox_router.routing import selection
from signalbox_router.state import RouterState


def explain(state: RouterState, query_string: bytes) -> replies.Reply:
    """The route ``?model=…&capabilities=…`` would take now; raises BadRequest for an unknown
    capability, UnknownModel for a model nothing serves."""
    query = parse_qs(query_string.decode(errors="replace"))
    model = (query.get("model") or [""])[0]
    try:
        caps = frozenset(
            Capability(c) for q in query.get("capabilities", []) for c in q.split(",") if c
        )
    except ValueError as exc:
        raise BadRequest("unknown capability", param="capabilities") from exc
    route = selection.route(model, selection.Needs(caps), state.snapshot, state.view())
    return replies.json_reply(
        {
            "model": model,
            "policy": route.policy,
            "strategy": route.strategy.value,
            "eligible": [
                {
                    "provider": c.provider,
                    "model": c.model,
                    "priority": c.priority,
                    "weight": c.weight,
                }
                for c in route.ordered
            ],
            "excluded": [{"provider": e.provider, "reason": e.reason} for e in route.excluded],
        }
    )


def readiness(state: RouterState, max_age: float) -> replies.Reply:
    """200 when the snapshot is fresh, a provider is eligible and no watcher is failing."""
    snap = state.snapshot
    age = time.monotonic() - state.synced_at
    now = time.monotonic()
    eligible = [
        n for n, e in snap.providers.items() if e.usable and not state.breakers.is_open(n, now)
    ]
    fresh = age <= max_age
    failing = dict(state.failing)
    ready = fresh and bool(eligible) and not failing
    body: dict[str, object] = {
        "ready": ready,
        "snapshot_age_seconds": round(age, 1),
        "eligible_providers": len(eligible),
    }
    if not ready:
        why = [*failing.values()]
        why += [] if fresh else ["the snapshot is stale"]
        why += [] if eligible else ["no eligible provider"]
        body["reason"] = "; ".join(why)
    if failing:
        body["failing"] = failing
    if state.problems:
        body["problems"] = list(state.problems[:20])
    for name, report in state.reports.items():
        body[name] = report()
    return replies.json_reply(body, 200 if ready else 503)
