"""Computes an LLMProvider's status from what the operator knows, and decides when to write it.

Pure: the prober gathers facts (spec, references, circuit, last probe) and this module turns
them into conditions and fields. When a computed status is worth writing is ``status_writes``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from signalbox_api import conditions
from signalbox_api.conditions import Condition, ConditionStatus, ConditionType, Reason
from signalbox_api.provider import (
    CircuitOverride,
    CircuitState,
    CircuitStatus,
    EndpointCounts,
    HealthStatus,
    HealthWindow,
    LLMProviderSpec,
    LLMProviderStatus,
    ObservedModel,
    ProbeError,
    SelfTestStatus,
)
from signalbox_operator.status import discovery, uptime
from signalbox_operator.status.circuit import Circuit, effective_state
from signalbox_operator.status.discovery import Discovered, clip
from signalbox_providers.model_facts import ModelFacts
from signalbox_providers.outcomes import Outcome

SUMMARY_MODELS = 3
MAX_MESSAGE = 1024  # condition and error messages; provider-made text can be any length
MAX_ENDPOINT = 2048  # LLMProviderStatus.endpoint

FAILURE_REASONS = {
    Outcome.CONNECT_FAILURE: Reason.CONNECTION_REFUSED,
    Outcome.TIMEOUT: Reason.TIMEOUT,
    Outcome.SERVER_ERROR: Reason.SERVER_ERROR,
    Outcome.AUTH_FAILED: Reason.AUTH_FAILED,
    Outcome.MODEL_NOT_FOUND: Reason.MODEL_NOT_FOUND,
    Outcome.INVALID_RESPONSE: Reason.INVALID_RESPONSE,
    Outcome.BAD_REQUEST: Reason.PROBE_FAILED,
    Outcome.RATE_LIMITED: Reason.RATE_LIMITED,
    Outcome.QUOTA_EXHAUSTED: Reason.QUOTA_EXHAUSTED,
}

# Reasons that say more than the outcome does, and the outcome each stands for.
SPECIFIC_REASONS = {
    Reason.REDIRECTED: Outcome.INVALID_RESPONSE,
    Reason.RESPONSE_TOO_LARGE: Outcome.INVALID_RESPONSE,
    Reason.PROTOCOL_ERROR: Outcome.INVALID_RESPONSE,
    Reason.TLS_ERROR: Outcome.CONNECT_FAILURE,
    Reason.NAME_NOT_RESOLVED: Outcome.CONNECT_FAILURE,
}

OUTCOME_OF_REASON = {
    **{reason.value: outcome for outcome, reason in FAILURE_REASONS.items()},
    **{reason.value: outcome for reason, outcome in SPECIFIC_REASONS.items()},
}


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
    models: Discovered | None = None
    reason: Reason | None = None  # when it says more than the outcome (Redirected, TLSError)

    @property
    def failure_reason(self) -> Reason:
        return self.reason or FAILURE_REASONS.get(self.outcome, Reason.PROBE_FAILED)


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
    last_hour: uptime.Summary | None = None
    last_day: uptime.Summary | None = None
    discovered: Discovered | None = None
    self_test: SelfTestStatus | None = None
    annotation_problem: str = ""  # an invalid signalbox.dev/circuit annotation, ignored


def missing_models(spec: LLMProviderSpec, discovered: Discovered | None) -> list[str]:
    """Declared models the provider's own list no longer has (empty without discovery)."""
    if not spec.discover_models or discovered is None:
        return []
    return [m.name for m in spec.models if not discovered.has(m.name)]


def compute(facts: Facts, previous: Sequence[Condition]) -> LLMProviderStatus:
    """The full status for ``facts``; ``previous`` conditions keep their transition times."""
    declared = [m.name for m in facts.spec.models] if facts.spec else []
    names, models_note = discovery.merge(declared, facts.discovered)
    facts_of = facts.discovered.facts if facts.discovered else {}
    verdicts = _verdicts(facts, models_note)
    conds = list(previous)
    for type_, (status, reason, message) in verdicts.items():
        conds = conditions.set_condition(
            conds,
            type_,
            status,
            reason,
            clip(message, MAX_MESSAGE),
            generation=facts.generation,
            now=facts.now,
        )
    endpoint = facts.refs.base_url
    return LLMProviderStatus(
        observed_generation=facts.generation,
        conditions=conds,
        circuit=_circuit_status(facts),
        health=_health(facts),
        endpoint=endpoint if endpoint and len(endpoint) <= MAX_ENDPOINT else None,
        endpoints=facts.refs.endpoints,
        models=[_observed(n, n in declared, facts_of.get(n)) for n in names],
        model_summary=_summary(names),
        capability_summary=_capability_summary(names, facts_of),
        self_test=facts.self_test,
    )


def failed(facts: Facts, previous: Sequence[Condition], error: str) -> LLMProviderStatus:
    """The status to show when the operator itself failed on this provider: Ready=False with
    reason OperatorError, the other conditions as they were. Uses nothing provider-made."""
    conds = conditions.set_condition(
        [c for c in previous if c.type != ConditionType.READY],
        ConditionType.READY,
        "False",
        Reason.OPERATOR_ERROR,
        clip(f"the operator failed on this provider: {error}", MAX_MESSAGE),
        generation=facts.generation,
        now=facts.now,
    )
    return LLMProviderStatus(observed_generation=facts.generation, conditions=conds)


Verdict = tuple[ConditionStatus, str, str]


def _verdicts(f: Facts, models_note: str = "") -> dict[str, Verdict]:
    out: dict[str, Verdict] = {}
    out[ConditionType.ACCEPTED] = (
        ("False", Reason.INVALID_SPEC, f.invalid)
        if f.invalid
        else ("True", Reason.VALID, f.annotation_problem)
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
        out[ConditionType.HEALTHY] = _healthy(f, models_note)
        out[ConditionType.AVAILABLE] = _available(f)
    out[ConditionType.READY] = _ready(out)
    return out


def _healthy(f: Facts, models_note: str = "") -> Verdict:
    assert f.spec is not None
    if f.spec.suspend:
        return ("Unknown", Reason.SUSPENDED, "probing is suspended")
    missing = missing_models(f.spec, f.discovered)
    if f.circuit.healthy is None:
        probe = f.last_probe
        if probe is None or probe.outcome == Outcome.SUCCESS:
            return ("Unknown", Reason.PENDING, "waiting for the first probe")
        return ("Unknown", probe.failure_reason, f"the last probe failed: {probe.message}")
    if not f.circuit.healthy:
        probe = f.last_probe
        failed_now = probe is not None and probe.outcome != Outcome.SUCCESS
        reason = FAILURE_REASONS.get(
            f.circuit.last_failure or Outcome.BAD_REQUEST, Reason.PROBE_FAILED
        )
        if probe is not None and failed_now and probe.reason is not None:
            reason = probe.reason  # it says more than the outcome: Redirected, TLSError
        return ("False", reason, probe.message if probe is not None else "")
    if missing:
        return (
            "False",
            Reason.MODEL_NOT_FOUND,
            f"declared models not served: {', '.join(missing[:5])}",
        )
    return ("True", Reason.PROBE_SUCCEEDED, models_note)


def _available(f: Facts) -> Verdict:
    if f.spec is not None and f.spec.suspend:
        return ("False", Reason.SUSPENDED, "spec.suspend is true")
    state = effective_state(f.circuit, f.override)
    if state == CircuitState.OPEN:
        forced = " (forced by annotation)" if f.override else ""
        return ("False", Reason.CIRCUIT_OPEN, f"the circuit is open{forced}")
    if f.circuit.rate_limited(f.now) and f.override != CircuitOverride.FORCE_CLOSED:
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
        rate_limited_until=c.rate_limited_until if c.rate_limited(f.now) else None,
    )


def _health(f: Facts) -> HealthStatus | None:
    probe = f.last_probe
    if probe is None:
        return None
    error = None
    if probe.outcome != Outcome.SUCCESS:
        error = ProbeError(
            code=max(0, probe.code),
            reason=probe.failure_reason.value[:64],
            message=clip(probe.message, MAX_MESSAGE),
        )
    return HealthStatus(
        last_probe_time=probe.at,
        last_success_time=f.last_success,
        latency_ms=probe.latency_ms,
        success_rate=None if f.success_rate is None else round(f.success_rate, 3),
        latency=show_latency(probe.latency_ms),
        last_hour=_window(f.last_hour),
        last_day=_window(f.last_day),
        last_error=error,
    )


def show_latency(ms: int) -> str:
    """Milliseconds with their unit, for people: ``42ms``, ``1.3s``, ``75s``."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    return f"{round(ms / 1000)}s"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _window(s: uptime.Summary | None) -> HealthWindow | None:
    if s is None or (s.probes == 0 and s.uptime is None):
        return None
    return HealthWindow(
        success_rate=_rounded(s.success_rate), uptime=_rounded(s.uptime), probes=s.probes
    )


def _observed(name: str, declared: bool, found: ModelFacts | None) -> ObservedModel:
    if found is None:
        return ObservedModel(name=name, declared=declared)
    return ObservedModel(
        name=name,
        declared=declared,
        capabilities=sorted(found.capabilities),
        context_window=found.context_window,
    )


def _tokens(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _capability_summary(names: list[str], found: Mapping[str, ModelFacts]) -> str | None:
    """``name=32k:chat,tools`` for the first few models the provider describes."""
    parts = []
    for name in [n for n in names if n in found and not found[n].empty][:SUMMARY_MODELS]:
        f = found[name]
        window = _tokens(f.context_window) if f.context_window else "?"
        caps = ",".join(sorted(f.capabilities))
        parts.append(f"{name}={window}" + (f":{caps}" if caps else ""))
    return clip(" ".join(parts), 256) if parts else None


def _summary(names: list[str]) -> str | None:
    if not names:
        return None
    head = ",".join(names[:SUMMARY_MODELS])
    more = len(names) - SUMMARY_MODELS
    return clip(head + (f" +{more}" if more > 0 else ""), 256)
