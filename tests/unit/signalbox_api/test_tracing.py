"""Tracing is set up from the standard OTEL_* variables: off unless asked for, and a setting it
cannot follow is refused at start, naming the variable."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from signalbox_api import tracing

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_on_only_when_asked_for(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled(env) is on
    assert (tracing.provider("svc", env) is not None) is on


def test_the_service_name_is_the_process_own_unless_set() -> None:
    own = tracing.provider("signalbox-router", ENDPOINT)
    named = tracing.provider("signalbox-router", {**ENDPOINT, "OTEL_SERVICE_NAME": "edge-a"})
    assert own is not None
    assert named is not None
    assert own.resource.attributes["service.name"] == "signalbox-router"
    assert named.resource.attributes["service.name"] == "edge-a"
    for made in (own, named):
        made.shutdown()


def test_the_sampler_follows_the_standard_names() -> None:
    assert tracing.sampler({}).get_description().startswith("ParentBased{root:AlwaysOnSampler")
    ratio = tracing.sampler(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
    )
    assert isinstance(ratio, ParentBased)
    assert "TraceIdRatioBased{0.01}" in str(ratio.get_description())  # type: ignore[no-untyped-call]
    plain = tracing.sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"})
    assert isinstance(plain, TraceIdRatioBased)
    assert tracing.sampler({"OTEL_TRACES_SAMPLER": "always_off"}).get_description() == (
        "AlwaysOffSampler"
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"}, "_ARG"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "_ARG"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_a_setting_it_cannot_follow_is_refused_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(tracing.TracingConfigError, match=named):
        tracing.provider("svc", {**ENDPOINT, **env})


def test_the_traces_protocol_wins_over_the_general_one() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert tracing.protocol(env) == "http/protobuf"
    assert tracing.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    assert tracing.protocol({}) == "http/protobuf"


def test_spans_leave_in_batches_from_a_thread_of_their_own() -> None:
    made = tracing.provider("svc", ENDPOINT)
    assert made is not None
    processors = made._active_span_processor._span_processors
    assert [type(p) for p in processors] == [BatchSpanProcessor]
    made.shutdown()


def test_log_records_carry_the_current_trace_and_span() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    ids = tracing.TraceIds()
    assert ids.filter(record)
    assert (getattr(record, "trace_id"), getattr(record, "span_id")) == ("-", "-")  # noqa: B009
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        assert ids.filter(record)
        context = span.get_span_context()
    assert getattr(record, "trace_id") == format(context.trace_id, "032x")  # noqa: B009
    assert getattr(record, "span_id") == format(context.span_id, "016x")  # noqa: B009
    assert trace.get_current_span() is trace.INVALID_SPAN
