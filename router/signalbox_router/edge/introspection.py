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
    """200 when this replica can route what it was told: its snapshot is fresh and no watcher
    is failing. A replica with no eligible provider is still Ready: every replica would say the
    same, and a client is better served by an OpenAI-shaped 503 naming the model than by a
    Service with no endpoints (and ``helm install --wait`` does not wait on providers). The
    body counts the eligible providers and says when there is none."""
    snap = state.snapshot
    age = time.monotonic() - state.synced_at
    now = time.monotonic()
    eligible = [
        n for n, e in snap.providers.items() if e.usable and not state.breakers.is_open(n, now)
    ]
    fresh = age <= max_age
    failing = dict(state.failing)
    ready = fresh and not failing
    body: dict[str, object] = {
        "ready": ready,
        "snapshot_age_seconds": round(age, 1),
        "eligible_providers": len(eligible),
    }
    if not ready:
        body["reason"] = "; ".join(
            [*failing.values(), *([] if fresh else ["the snapshot is stale"])]
        )
    if not eligible:
        body["note"] = "no eligible provider: model requests are answered 503 until one is"
    if failing:
        body["failing"] = failing
    if state.problems:
        body["problems"] = list(state.problems[:20])
    for name, report in state.reports.items():
        body[name] = report()
    return replies.json_reply(body, 200 if ready else 503)
