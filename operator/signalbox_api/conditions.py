"""Status conditions in the shape of metav1.Condition, and the helpers that keep them honest.

``lastTransitionTime`` moves only when a condition's status flips, and every write stamps the
generation it was computed from, as Kubernetes controllers do.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from signalbox_api.primitives import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType(enum.StrEnum):
    ACCEPTED = "Accepted"
    RESOLVED_REFS = "ResolvedRefs"
    HEALTHY = "Healthy"
    AVAILABLE = "Available"
    READY = "Ready"
    DEGRADED = "Degraded"


class Reason(enum.StrEnum):
    """Stable CamelCase reasons; tools and alerts match on these, so never rename one."""

    PENDING = "Pending"
    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    RESOLVED = "Resolved"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a reason, not a secret)
    SERVICE_NOT_FOUND = "ServiceNotFound"
    NO_READY_ENDPOINTS = "NoReadyEndpoints"
    PROBE_SUCCEEDED = "ProbeSucceeded"
    PROBE_FAILED = "ProbeFailed"
    TIMEOUT = "Timeout"
    CONNECTION_REFUSED = "ConnectionRefused"
    SERVER_ERROR = "ServerError"
    AUTH_FAILED = "AuthFailed"
    RATE_LIMITED = "RateLimited"
    QUOTA_EXHAUSTED = "QuotaExhausted"  # the provider says the account is out of credit
    MODEL_NOT_FOUND = "ModelNotFound"
    INVALID_RESPONSE = "InvalidResponse"
    CIRCUIT_OPEN = "CircuitOpen"
    SUSPENDED = "Suspended"
    READY = "Ready"
    UNHEALTHY = "Unhealthy"
    CAPABILITY_MISMATCH = "CapabilityMismatch"
    MODEL_CONFLICT = "ModelConflict"
    NOT_FOUND = "NotFound"
    NO_ELIGIBLE_PROVIDERS = "NoEligibleProviders"
    FAILING_OVER = "FailingOver"
    ALL_PROVIDERS_ELIGIBLE = "AllProvidersEligible"
    INVALID_HEADER = "InvalidHeader"  # a Secret value that cannot be sent as an HTTP header
    REDIRECTED = "Redirected"  # the provider answered a probe with a 3xx
    TLS_ERROR = "TLSError"
    NAME_NOT_RESOLVED = "NameNotResolved"  # the endpoint's host name did not resolve (DNS)
    PROTOCOL_ERROR = "ProtocolError"  # the provider's answer is not valid HTTP
    RESPONSE_TOO_LARGE = "ResponseTooLarge"
    OPERATOR_ERROR = "OperatorError"  # the operator itself failed on this object


class Condition(ApiModel):
    """One aspect of the object's state, in the shape of Kubernetes' metav1.Condition."""

    type: Annotated[str, StringConstraints(max_length=316)] = Field(
        description="Kind of condition: Accepted, ResolvedRefs, Healthy, Available, Ready "
        "or Degraded."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation this condition was computed from.",
    )
    last_transition_time: datetime = Field(
        description="When the status last changed from one value to another."
    )
    reason: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    ] = Field(
        description="CamelCase, machine-readable cause of the status, stable across versions."
    )
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="", description="Human-readable details. Never contains secret values."
    )


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """Return the condition of the given type, or None."""
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return ``conditions`` with one condition set; ``lastTransitionTime`` moves only on a flip."""
    previous = find(conditions, type_)
    transitioned = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=now
        if transitioned or previous is None
        else previous.last_transition_time,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: _ORDER.get(c.type, len(_ORDER)))


_ORDER = {t.value: i for i, t in enumerate(ConditionType)}
