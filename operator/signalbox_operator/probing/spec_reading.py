"""Reads what the API server holds for an LLMProvider: its spec, with the checks the schema
cannot make, and the circuit its last status recorded, so a restart or a new leader carries on
where the last one stopped. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from signalbox_api import conditions
from signalbox_api.conditions import ConditionType, Reason
from signalbox_api.provider import LLMProviderSpec, LLMProviderStatus
from signalbox_operator.status import circuit as circuits
from signalbox_operator.status import provider_status
from signalbox_providers.outcomes import Outcome

KEPT_METADATA = (
    "namespace",
    "name",
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "labels",
)
OUR_ANNOTATIONS = "signalbox.dev/"


def kept(body: Mapping[str, Any], *, status: bool = True) -> dict[str, Any]:
    """What the operator keeps of an LLMProvider the watch delivered (its probe loop, and the
    policies that select it): names, generation, version, creation time, labels, Signalbox's
    own annotations, spec and status. The rest (managed fields, ``kubectl``'s last-applied
    copy, other tools' annotations) is kilobytes an object that thousands of providers would
    hold twice for nothing. ``status=False``: without the status (a probe loop that wrote one
    holds what it wrote)."""
    meta = body.get("metadata") or {}
    slim: dict[str, Any] = {k: meta[k] for k in KEPT_METADATA if k in meta}
    annotations = meta.get("annotations") or {}
    ours = {k: v for k, v in annotations.items() if k.startswith(OUR_ANNOTATIONS)}
    if ours:
        slim["annotations"] = ours
    slim_body = {"metadata": slim, "spec": body.get("spec")}
    if status and body.get("status") is not None:
        slim_body["status"] = body.get("status")
    return slim_body


def parse_spec(raw: Any) -> tuple[LLMProviderSpec | None, str | None]:
    """The spec, or why it is unacceptable (for what the schema cannot check)."""
    try:
        spec = LLMProviderSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"spec.{where}: {first['msg']}"
    names: dict[str, str] = {}
    for model in spec.models:
        for alias in (model.name, *model.aliases):
            if alias in names and names[alias] != model.name:
                return None, (
                    f"spec.models: name {alias!r} is used by both {names[alias]!r} "
                    f"and {model.name!r}"
                )
            names[alias] = model.name
    return spec, None


def parse_status(status: Mapping[str, Any] | None) -> LLMProviderStatus:
    """A status as stored, or an empty one when it is not ours to read."""
    try:
        return LLMProviderStatus.model_validate(status or {})
    except pydantic.ValidationError:
        return LLMProviderStatus()


def restore(status: Mapping[str, Any] | None) -> circuits.Circuit:
    """The circuit as the last status recorded it, so a restart or failover keeps it."""
    if not status:
        return circuits.Circuit()
    parsed = parse_status(status)
    healthy_cond = conditions.find(parsed.conditions, ConditionType.HEALTHY)
    healthy: bool | None = None
    last_failure: Outcome | None = None
    if healthy_cond is not None and healthy_cond.status != "Unknown":
        # A missing model is no fault of the provider's health; the circuit saw it healthy.
        healthy = healthy_cond.status == "True" or healthy_cond.reason == Reason.MODEL_NOT_FOUND
        last_failure = provider_status.OUTCOME_OF_REASON.get(healthy_cond.reason)
    c = parsed.circuit
    if c is None:
        return circuits.Circuit(healthy=healthy, last_failure=last_failure)
    if c.override is not None:
        return circuits.Circuit(
            healthy=healthy, last_failure=last_failure, rate_limited_until=c.rate_limited_until
        )
    return circuits.Circuit(
        last_failure=last_failure,
        rate_limited_until=c.rate_limited_until,
        state=c.state,
        since=c.since,
        open_until=c.open_until,
        consecutive_failures=c.consecutive_failures,
        trips=c.trips,
        healthy=healthy,
    )
