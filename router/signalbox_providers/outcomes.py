"""What a call to a provider came to, classified from status codes and structured error bodies.

Never from message text: providers reword messages, not codes. Shared by the operator's probes
and the router's failover.
"""

from __future__ import annotations

import email.utils
import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class Outcome(enum.StrEnum):
    SUCCESS = "Success"
    CONNECT_FAILURE = "ConnectFailure"
    TIMEOUT = "Timeout"
    SERVER_ERROR = "ServerError"
    AUTH_FAILED = "AuthFailed"
    RATE_LIMITED = "RateLimited"
    QUOTA_EXHAUSTED = "QuotaExhausted"  # out of credit or quota: a 402, OpenAI's insufficient_quota
    MODEL_NOT_FOUND = "ModelNotFound"
    BAD_REQUEST = "BadRequest"
    INVALID_RESPONSE = "InvalidResponse"


# Outcomes that say the provider is unwell (as opposed to the request being wrong or the
# provider asking us to slow down).
FAILURES = frozenset(
    {
        Outcome.CONNECT_FAILURE,
        Outcome.TIMEOUT,
        Outcome.SERVER_ERROR,
        Outcome.AUTH_FAILED,
        Outcome.QUOTA_EXHAUSTED,
        Outcome.MODEL_NOT_FOUND,
        Outcome.INVALID_RESPONSE,
    }
)

_NOT_FOUND_CODES = frozenset({"model_not_found", "not_found_error", "NotFoundError", "404"})
# Error codes and types that say the account is out of credit or quota (OpenAI's 429
# ``insufficient_quota``, Anthropic's ``billing_error``), whatever the status.
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_error", "insufficient_credits"})


def classify_status(status: int, body: Any = None) -> Outcome:
    """Classify an HTTP answer from its status code and, for 404, its structured error body."""
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 402 or _names_spent_quota(body):
        return Outcome.QUOTA_EXHAUSTED
    if status in (401, 403):
        return Outcome.AUTH_FAILED
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 404:
        return Outcome.MODEL_NOT_FOUND if _names_missing_model(body) else Outcome.INVALID_RESPONSE
    if status >= 500:
        return Outcome.SERVER_ERROR
    return Outcome.BAD_REQUEST


def _names_spent_quota(body: Any) -> bool:
    """True when an error body's structured code or type says the quota or credit is spent."""
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return False
    return bool({str(err.get("code")), str(err.get("type"))} & _QUOTA_CODES)


def _names_missing_model(body: Any) -> bool:
    """True when a 404 body is a provider's structured 'no such model' error."""
    if not isinstance(body, Mapping):
        return False
    err = body.get("error")
    if isinstance(err, Mapping):  # OpenAI {"error": {"code"}} and Anthropic {"error": {"type"}}
        return bool({str(err.get("code")), str(err.get("type"))} & _NOT_FOUND_CODES)
    if isinstance(err, str):  # Ollama {"error": "model ... not found"} always means the model
        return True
    return body.get("object") == "error" and str(body.get("type")) in _NOT_FOUND_CODES


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
