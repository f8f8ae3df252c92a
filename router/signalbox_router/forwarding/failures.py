"""The one way failure travels on the request path: exceptions of this tree.

``RequestFailed`` ends a request with an OpenAI-shaped error reply. ``UpstreamFailed`` is one
attempt at one provider gone wrong, with the ``Outcome`` that decides failover and what the
breaker hears; the failover loop catches it, everything else passes through to the server,
which answers a bug in our own code with a 500. Whatever an attempt holds is released by the
attempt itself (``attempts.Attempt``), whichever of these ends it.
"""

from __future__ import annotations

from typing import Any

from signalbox_providers.outcomes import Outcome
from signalbox_router.asgi import replies

# What a client gets when the last attempt failed this way (502 otherwise).
_STATUS_FOR = {Outcome.TIMEOUT: 504, Outcome.RATE_LIMITED: 429}


class RequestFailed(Exception):
    """The request ends with this error reply."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after = retry_after

    def reply(self) -> replies.Reply:
        return replies.error(
            self.status,
            self.message,
            code=self.code,
            param=self.param,
            retry_after=self.retry_after,
        )


class UpstreamFailed(RequestFailed):
    """One attempt failed. ``upstream`` is the provider's own error body in OpenAI's shape
    (secrets redacted), passed to the client when the failure is the request's fault."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        upstream: dict[str, Any] | None = None,
    ) -> None:
        status = upstream_status if upstream is not None else _STATUS_FOR.get(outcome, 502)
        super().__init__(status or 502, message, code=outcome.value, retry_after=retry_after)
        self.outcome = outcome
        self.upstream_status = upstream_status
        self.upstream = upstream
        self.attempts = 1  # how many attempts the request had made when it gave up
        self.names: replies.HeaderTuple = ()  # the provider and model that answered


class ClientGone(Exception):
    """The client went away; what it started is cancelled, not failed."""
