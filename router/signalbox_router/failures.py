"""How a request fails: one exception tree, the only way failure travels on the request path.

    RequestError              the request ends with this error (status, code, message, param)
    ├── BadRequest            400: a malformed body, field, header or JSON; a request no
    │   │                     provider can take as sent (``unsupported_request``)
    │   └── BodyTooLarge      413: a body over the router's --max-body
    ├── Unauthorized          401: no valid client key (or metrics token)
    ├── NotFound              404: no such path
    │   └── UnknownModel      404: no RoutingPolicy serves the model
    ├── MethodNotAllowed      405
    ├── RateLimited           429 with Retry-After: every provider for the model is at its limit
    ├── NoEligibleProvider    503 with Retry-After: no provider may take the model's traffic now
    ├── OutOfTime             504: the request's total timeout passed
    └── UpstreamFailed        one attempt at one provider failed; its ``Outcome`` decides failover
                              and what the breaker hears; the last one is the client's answer
                              (502, 504 for a timeout, 429, or the provider's own 4xx body)
    ClientGone                not a RequestError: the client went away and nobody is left to answer

Foreign exceptions are mapped into this tree once, where they enter: transport errors (aiohttp,
deadlines, oversized answers) in ``forwarding.exchange.upstream_failure``, a dialect's refusal in
the failover loop, a client API's parse errors at the edge. The edge
(``edge.error_replies.reply_for``) is the one place a RequestError becomes a reply, in the shape
of the client's API; any other exception is a bug of ours and a 500 there. Whatever an attempt
holds is given back by the attempt itself (``forwarding.attempts``), whichever error ends it.
"""

from __future__ import annotations

from collections.abc import Sequence

from signalbox_providers.outcomes import Outcome

Header = tuple[bytes, bytes]
DEFAULT_RETRY_AFTER = 5.0  # seconds, when a provider says nothing (or nobody can say)

# What a client gets when the last attempt failed this way (502 otherwise).
_STATUS_FOR = {Outcome.TIMEOUT: 504, Outcome.RATE_LIMITED: 429}


class RequestError(Exception):
    """The request ends with this error. ``headers`` go out with the reply."""

    status = 500
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        headers: Sequence[Header] = (),
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.retry_after = message, param, retry_after
        if code is not None:
            self.code = code
        self.headers: tuple[Header, ...] = tuple(headers)


class BadRequest(RequestError):
    status, code = 400, "invalid_request"


class BodyTooLarge(BadRequest):
    status, code = 413, "request_too_large"


class Unauthorized(RequestError):
    status, code = 401, "invalid_api_key"


class NotFound(RequestError):
    status, code = 404, "unknown_url"


class UnknownModel(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist.", param="model")
        self.model = model


class MethodNotAllowed(RequestError):
    status, code = 405, "method_not_allowed"


class RateLimited(RequestError):
    status, code = 429, "rate_limit_exceeded"


class NoEligibleProvider(RequestError):
    status, code = 503, "no_eligible_provider"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"no eligible provider for model '{model}'", retry_after=DEFAULT_RETRY_AFTER
        )


class OutOfTime(RequestError):
    """The request's total timeout passed (or would, before the next attempt could start)."""

    status, code = 504, "total_timeout"

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"the request's total timeout passed after {attempts} attempt(s)",
            headers=[attempts_header(attempts)],
        )


class UpstreamFailed(RequestError):
    """One attempt failed. ``upstream`` is the provider's own error body in OpenAI's shape,
    passed to the client (with every Secret value redacted) when the failure is the request's
    fault; ``attempts`` and ``names`` (who answered) are filled in as the request gives up."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        upstream: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=outcome.value, retry_after=retry_after)
        status = upstream_status if upstream is not None else _STATUS_FOR.get(outcome, 502)
        self.status = status or 502
        self.outcome = outcome
        self.upstream_status = upstream_status
        self.upstream = upstream
        self.attempts = 1  # how many attempts the request had made when it gave up
        self.names: tuple[Header, ...] = ()  # the provider and model that answered


class ClientGone(Exception):
    """The client went away; what it started is cancelled, not failed."""


def attempts_header(attempts: int) -> Header:
    return (b"x-signalbox-attempts", str(attempts).encode())
