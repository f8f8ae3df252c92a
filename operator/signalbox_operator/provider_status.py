"""Computes an LLMProvider's status from what the operator knows, and decides when to write it.

Pure: the prober gathers facts (spec, references, circuit, last probe) and this module turns
them into conditions and fields. Status is written on every transition, and otherwise at most
once per ``REFRESH_SECONDS`` to refresh the health figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signalbox_api import conditions
from signalbox_api.conditions import Condition, ConditionStatus, ConditionType, Reason
from signalbox_api.provider import (
    CircuitOverride,
    CircuitState,
    CircuitStatus,
    EndpointCounts,
    HealthStatus,
    LLMProviderSpec,
    LLMProviderStatus,
    ObservedModel,
    ProbeError,
)
from signalbox_operator.circuit import Circuit, effective_state
from signalbox_providers.outcomes import Outcome

REFRESH_SECONDS = 60.0
SUMMARY_MODELS = 3

FAILURE_REASONS = {
    Outcome.CONNECT_FAILURE: Reason.CONNECTION_REFUSED,
    Outcome.TIMEOUT: Reason.TIMEOUT,
    Outcome.SERVER_ERROR: Reason.SERVER_ERROR,
    Outcome.AUTH_FAILED: Reason.AUTH_FAILED,
    Outcome.MODEL_NOT_FOUND: Reason.MODEL_NOT_FOUND,
    Outcome.INVALID_RESPONSE: Reason.INVALID_RESPONSE,
    Outcome.BAD_REQUEST: Reason.PROBE_FAILED,
    Outcome.RATE_LIMITED: Reason.RATE_LIMITED,
}

OUTCOME_OF_REASON = {reason.value: outcome for outcome, reason in FAILURE_REASONS.items()}


@dataclass(frozen=True)
class Refs:
    """What the provider's references resolved to. ``api_key`` is kept out of repr."""

    reason: Reason = Reason.RESOLVED
    message: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    endpoints: EndpointCounts | None = None

    @property
    def ok(self) -> bool:
        return self.reason == Reason.RESOLVED


@dataclass(frozen=True)
class ProbeReport:
    """One probe's result. ``message`` never holds secrets or response bodies."""

    outcome: Outcome
    at: datetime
    latency_ms: int
    code: int = 0
    message: str = ""
    retry_after: float | None = None
    models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the status is computed from."""

    spec: LLMProviderSpec | None  # None when the spec is unacceptable; see ``invalid``
    generation: int | None
    now: datetime
    invalid: str | None = None  # why the spec is unacceptable
    refs: Refs = field(default_factory=Refs)
    circuit: Circuit = field(default_factory=Circuit)
    override: CircuitOverride | None = None
    last_probe: ProbeReport | None = None
    last_success: datetime | None = None
    success_rate: float | None = None
    discovered: tuple[str, ...] | None = None


def missing_models(spec: LLMProviderSpec, discovered: Sequence[str] | None) -> list[str]:
    """Declared models the provider's own list no longer has (empty without discovery)."""
    if not spec.discover_models or discovered is None:
        return []
    have = set(discovered)
    return [m.name for m in spec.models if m.name not in have]


def compute(facts: Facts, previous: Sequence[Condition]) -> LLMProviderStatus:
    """The full status for ``facts``; ``previous`` conditions keep their transition times."""
    verdicts = _verdicts(facts)
    conds = list(previous)
    for type_, (status, reason, message) in verdicts.items():
        conds = conditions.set_condition(
            conds, type_, status, reason, message, generation=facts.generation, now=facts.now
        )
    models = _models(facts)
    return LLMProviderStatus(
        observed_generation=facts.generation,
        conditions=conds,
        circuit=_circuit_status(facts),
        health=_health(facts),
        endpoint=facts.refs.base_url,
        endpoints=facts.refs.endpoints,
        models=models,
        model_summary=_summary([m.name for m in models]),
    )


Verdict = tuple[ConditionStatus, str, str]


def _verdicts(f: Facts) -> dict[str, Verdict]:
    out: dict[str, Verdict] = {}
    out[ConditionType.ACCEPTED] = (
        ("False", Reason.INVALID_SPEC, f.invalid) if f.invalid else ("True", Reason.VALID, "")
    )
    if f.invalid or f.spec is None:
        pending: Verdict = ("Unknown", Reason.INVALID_SPEC, "the spec was not accepted")
        out.update(
            {
                ConditionType.RESOLVED_REFS: pending,
                ConditionType.HEALTHY: pending,
                ConditionType.AVAILABLE: pending,
            }
        )
    else:
        out[ConditionType.RESOLVED_REFS] = (
            ("True", Reason.RESOLVED, f.refs.message)
            if f.refs.ok
            else ("False", f.refs.reason, f.refs.message)
        )
        out[ConditionType.HEALTHY] = _healthy(f)
        out[ConditionType.AVAILABLE] = _available(f)
    out[ConditionType.READY] = _ready(out)
    return out


def _healthy(f: Facts) -> Verdict:
    assert f.spec is not None
    if f.spec.suspend:
        return ("Unknown", Reason.SUSPENDED, "probing is suspended")
    missing = missing_models(f.spec, f.discovered)
    if f.circuit.healthy is None:
        probe = f.last_probe
        if probe is None or probe.outcome == Outcome.SUCCESS:
            return ("Unknown", Reason.PENDING, "waiting for the first probe")
        failures = f.circuit.consecutive_failures
        reason = FAILURE_REASONS.get(probe.outcome, Reason.PROBE_FAILED)
        return ("Unknown", reason, f"{failures} failed probe(s) so far: {probe.message}")
    if not f.circuit.healthy:
        reason = FAILURE_REASONS.get(
            f.circuit.last_failure or Outcome.BAD_REQUEST, Reason.PROBE_FAILED
        )
        return ("False", reason, f.last_probe.message if f.last_probe else "")
    if missing:
        return (
            "False",
            Reason.MODEL_NOT_FOUND,
            f"declared models not served: {', '.join(missing[:5])}",
        )
    return ("True", Reason.PROBE_SUCCEEDED, "")


def _available(f: Facts) -> Verdict:
    if f.spec is not None and f.spec.suspend:
        return ("False", Reason.SUSPENDED, "spec.suspend is true")
    state = effective_state(f.circuit, f.override)
    if state == CircuitState.OPEN:
        forced = " (forced by annotation)" if f.override else ""
        return ("False", Reason.CIRCUIT_OPEN, f"the circuit is open{forced}")
    if f.circuit.rate_limited(f.now):
        until = f.circuit.rate_limited_until
        return (
            "False",
            Reason.RATE_LIMITED,
            f"rate limited until {until.isoformat() if until else 'later'}",
        )
    return ("True", Reason.READY, "")


_READY_INPUTS = (
    ConditionType.ACCEPTED,
    ConditionType.RESOLVED_REFS,
    ConditionType.HEALTHY,
    ConditionType.AVAILABLE,
)


def _ready(verdicts: dict[str, Verdict]) -> Verdict:
    for type_ in _READY_INPUTS:
        status, reason, message = verdicts[type_]
        if status == "False":
            return ("False", reason, message)
    for type_ in _READY_INPUTS:
        status, reason, message = verdicts[type_]
        if status == "Unknown":
            if reason == Reason.SUSPENDED:
                return ("False", reason, message)
            return ("Unknown", reason, message)
    return ("True", Reason.READY, "")


def _circuit_status(f: Facts) -> CircuitStatus:
    c = f.circuit
    return CircuitStatus(
        state=effective_state(c, f.override),
        since=c.since,
        open_until=c.open_until
        if effective_state(c, f.override) == c.state == CircuitState.OPEN
        else None,
        consecutive_failures=c.consecutive_failures,
        trips=c.trips,
        override=f.override,
    )


def _health(f: Facts) -> HealthStatus | None:
    probe = f.last_probe
    if probe is None:
        return None
    error = None
    if probe.outcome != Outcome.SUCCESS:
        error = ProbeError(code=probe.code, reason=probe.outcome.value, message=probe.message)
    return HealthStatus(
        last_probe_time=probe.at,
        last_success_time=f.last_success,
        latency_ms=probe.latency_ms,
        success_rate=None if f.success_rate is None else round(f.success_rate, 3),
        last_error=error,
    )


def _models(f: Facts) -> list[ObservedModel]:
    declared = [m.name for m in f.spec.models] if f.spec else []
    names = list(dict.fromkeys([*declared, *(f.discovered or ())]))
    return [ObservedModel(name=n, declared=n in declared) for n in names[:1024]]


def _summary(names: list[str]) -> str | None:
    if not names:
        return None
    head = ",".join(names[:SUMMARY_MODELS])
    more = len(names) - SUMMARY_MODELS
    return (head + (f" +{more}" if more > 0 else ""))[:256]


# -- when to write --------------------------------------------------------------------------

_VOLATILE_HEALTH = ("lastProbeTime", "lastSuccessTime", "latencyMs", "successRate")


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the health figures that change on every probe."""
    out = dict(status)
    health = dict(out.get("health") or {})
    for key in _VOLATILE_HEALTH:
        health.pop(key, None)
    out["health"] = health
    return out


def should_write(
    written: dict[str, Any] | None,
    new: dict[str, Any],
    written_at: datetime | None,
    now: datetime,
) -> bool:
    """Write on any transition; refresh mere health figures at most every REFRESH_SECONDS."""
    if written is None or written_at is None:
        return True
    if comparable(written) != comparable(new):
        return True
    return new != written and (now - written_at).total_seconds() >= REFRESH_SECONDS
