"""Tracing for Signalbox's processes, the router and the operator alike, set up from the
standard ``OTEL_*`` environment variables with the OpenTelemetry SDK and its OTLP exporters.

Off unless asked for: on when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` names ``otlp`` or
``console``; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keeps it off. The
rest is the SDK's, as every OpenTelemetry user knows it: the protocol
(``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``: ``http/protobuf``, the default, or ``grpc``), the
service name (``OTEL_SERVICE_NAME``, else the process's own) and resource attributes, the
sampler (``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``; ``parentbased_always_on`` by
default), headers, timeouts and the batch processor's bounds (``OTEL_BSP_*``). Spans leave in
batches from the SDK's own thread; a collector that is down costs dropped spans, never a
request. A setting the SDK would only warn about (an unknown protocol or sampler, a ratio that
is no number) stops the process at start, naming the variable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = tuple(
    f"{parent}{root}"
    for parent in ("", "parentbased_")
    for root in ("always_on", "always_off", "traceidratio")
)
_ON = ("otlp", "console")


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable the tracing setup cannot follow; its text names the variable."""


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``env`` asks for traces (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter in _ON
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def provider(service: str, env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """A tracer provider exporting as ``env`` says, with ``service`` as the service name unless
    ``OTEL_SERVICE_NAME`` gives one; None when tracing is off. Raises TracingConfigError."""
    if not enabled(env):
        return None
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service})
    traced = TracerProvider(resource=resource, sampler=sampler(env))
    traced.add_span_processor(BatchSpanProcessor(_exporter(env)))
    return traced


def install(service: str, env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """``provider`` made the process's own (the one ``opentelemetry.trace`` hands out)."""
    traced = provider(service, env)
    if traced is not None:
        trace.set_tracer_provider(traced)
        logging.getLogger(__name__).info(
            "tracing on: %s spans as %s, sampler %s",
            protocol(env),
            traced.resource.attributes.get(SERVICE_NAME),
            traced.sampler.get_description(),
        )
    return traced


def installed_tracer(name: str) -> trace.Tracer | None:
    """The process's tracer for ``name`` when ``install`` made a provider its own; else None
    (tracing is off: no span is started at all)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    return trace.get_tracer(name)


def protocol(env: Mapping[str, str]) -> str:
    chosen = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or PROTOCOLS[0]
    ).strip()
    if chosen not in PROTOCOLS:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL {chosen!r} is not one of {', '.join(PROTOCOLS)}"
        )
    return chosen


def sampler(env: Mapping[str, str]) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` name, checked."""
    name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    root = name.removeprefix("parentbased_")
    if root not in ("always_on", "always_off", "traceidratio"):
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER {name!r} is not one of {', '.join(SAMPLERS)}"
        )
    chosen: Sampler = ALWAYS_ON if root == "always_on" else ALWAYS_OFF
    if root == "traceidratio":
        arg = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
        try:
            ratio = float(arg)
        except ValueError:
            raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG {arg!r} is not a number") from None
        if not 0.0 <= ratio <= 1.0:
            raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG {ratio} is not between 0 and 1")
        chosen = TraceIdRatioBased(ratio)
    return ParentBased(chosen) if name.startswith("parentbased_") else chosen


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        return ConsoleSpanExporter()
    if protocol(env) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


class TraceIds(logging.Filter):
    """Gives each log record the ids of the span current where it was written (``trace_id``
    and ``span_id``, hex; ``-`` outside a span), so a line can be found from its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True
