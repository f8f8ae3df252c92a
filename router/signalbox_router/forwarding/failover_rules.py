"""The failover loop's pure decisions: which failures move a request on, how long to back off
before the next attempt, and what a request with no eligible provider is told."""

from __future__ import annotations

from signalbox_api.policy import Failover
from signalbox_api.primitives import parse_duration
from signalbox_providers.outcomes import Outcome
from signalbox_router.forwarding.attempts import DEFAULT_RETRY_AFTER
from signalbox_router.forwarding.failures import RequestFailed
from signalbox_router.routing.selection import Route


def nothing_eligible(route: Route) -> RequestFailed:
    if any(e.reason == "RateLimited" for e in route.excluded):
        return RequestFailed(
            429,
            "every provider for this model asked to slow down",
            code="rate_limit_exceeded",
            retry_after=DEFAULT_RETRY_AFTER,
        )
    return RequestFailed(
        503,
        f"no eligible provider for model '{route.model}'",
        code="no_eligible_provider",
        retry_after=DEFAULT_RETRY_AFTER,
    )


def retryable(outcome: Outcome, failover: Failover) -> bool:
    if outcome == Outcome.AUTH_FAILED:
        return True  # this provider's key is refused; another provider's may not be
    # A malformed answer is a server fault as far as failover is concerned.
    as_class = Outcome.SERVER_ERROR if outcome == Outcome.INVALID_RESPONSE else outcome
    return any(r.value == as_class.value for r in failover.retry_on)


def backoff(failover: Failover, attempt: int) -> float:
    b = failover.backoff
    base, top = parse_duration(b.base), parse_duration(b.max)
    return float(min(top, base * 2 ** (attempt - 2)))
