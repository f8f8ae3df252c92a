"""One provider's spans, when tracing is on: a span per probe and a span per status write.

A probe's span (``probe``, kind CLIENT) says which provider was probed, how (its type and the
HTTP status it got) and what came of it: the outcome, the latency and the circuit's state after
it. A status write's span (``status write``) says what the write carried (Ready, the circuit's
state before and after) and whether the API server took it, and links to the probes made since
the last write: a circuit that opened is followed from its write to the probes that opened it.
Never a key, a body or a message from the provider: the names and numbers the status shows.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from signalbox_api.provider import CircuitState
from signalbox_operator.kube import ObjectRef, Written
from signalbox_operator.status.provider_status import ProbeReport
from signalbox_providers.outcomes import Outcome

MAX_LINKS = 16  # probes a write links to: the latest, should many come between two writes


class ProbeTrace:
    def __init__(self, tracer: trace.Tracer, ref: ObjectRef, provider_type: str) -> None:
        self.tracer, self.provider_type = tracer, provider_type
        self.names = {
            "k8s.namespace.name": ref.namespace,
            "signalbox.provider": ref.name,
        }
        self.probes: collections.deque[trace.SpanContext] = collections.deque(maxlen=MAX_LINKS)

    @contextmanager
    def probe(self) -> Iterator[trace.Span]:
        """A probe's span, current for the block; ``probed`` says how it went."""
        attributes = {**self.names, "signalbox.provider_type": self.provider_type}
        with self.tracer.start_as_current_span(
            "probe", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            self.probes.append(span.get_span_context())
            yield span

    @staticmethod
    def probed(span: trace.Span, report: ProbeReport, state: CircuitState) -> None:
        span.set_attributes(
            {
                "signalbox.probe.outcome": report.outcome.value,
                "signalbox.probe.latency_ms": report.latency_ms,
                "signalbox.circuit.state": state.value,
            }
        )
        if report.code:
            span.set_attribute("http.response.status_code", report.code)
        if report.outcome != Outcome.SUCCESS:
            span.set_status(Status(StatusCode.ERROR, report.outcome.value))

    @contextmanager
    def write(self, before: CircuitState) -> Iterator[trace.Span]:
        """A status write's span, current for the block and linked to the probes since the
        last write."""
        links = [Link(c) for c in self.probes]
        self.probes.clear()
        attributes = {**self.names, "signalbox.circuit.previous_state": before.value}
        with self.tracer.start_as_current_span(
            "status write", links=links, attributes=attributes
        ) as span:
            yield span

    @staticmethod
    def written(span: trace.Span, outcome: Written, ready: bool, state: CircuitState) -> None:
        span.set_attributes(
            {
                "signalbox.write.outcome": outcome.value,
                "signalbox.ready": ready,
                "signalbox.circuit.state": state.value,
            }
        )
