"""The request trace's pure parts: why an answer ended, in each client API's shape; the
provider names of the GenAI conventions; and a request span that ends exactly once, current
only while the request runs."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from signalbox_router.access_log import Access
from signalbox_router.request_trace import PROVIDER_NAMES, Tracing, finish_reasons


@pytest.mark.parametrize(
    ("answer", "reasons"),
    [
        ({"choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]}, ["stop", "length"]),
        ({"choices": [{"finish_reason": None}]}, []),
        ({"choices": "junk"}, []),
        ({"stop_reason": "end_turn"}, ["end_turn"]),
        ({"status": "completed"}, ["completed"]),
        ({"data": []}, []),
    ],
)
def test_finish_reasons_are_read_from_each_client_api(
    answer: dict[str, Any], reasons: list[str]
) -> None:
    assert finish_reasons(answer) == reasons


def test_cloud_providers_take_the_conventions_well_known_names() -> None:
    assert PROVIDER_NAMES == {
        "OpenAI": "openai",
        "Anthropic": "anthropic",
        "AzureOpenAI": "azure.ai.openai",
    }


def test_a_request_span_is_current_while_the_request_runs_and_ends_once() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing = Tracing(provider.get_tracer("t"), lambda: (b"sk-secret",), content=True)
    request = tracing.request([], "POST", "/v1/chat/completions")
    assert trace.get_current_span() is request.span
    request.asked({"model": "m", "messages": [{"role": "user", "content": "uses sk-secret"}]})
    attempt = request.attempt("p", "Ollama", "llama3", "http://10.0.0.7:11434", 1)
    attempt.end(499, None, None, False)
    access = Access("rid", "POST", "/v1/chat/completions", 0.0, model="m", status=499)
    request.end(access)
    assert trace.get_current_span() is trace.INVALID_SPAN
    by_name = {s.name: s for s in exported.get_finished_spans()}
    assert set(by_name) == {"chat m", "chat llama3"}
    attempt_span, request_span = by_name["chat llama3"], by_name["chat m"]
    assert attempt_span.parent is not None
    assert attempt_span.parent.span_id == request_span.context.span_id
    assert attempt_span.attributes is not None
    assert attempt_span.attributes["gen_ai.provider.name"] == "ollama"
    assert attempt_span.attributes["server.port"] == 11434
    assert attempt_span.attributes["signalbox.outcome"] == "client_closed"
    assert request_span.attributes is not None
    assert request_span.attributes["error.type"] == "499"
    asked = str(request_span.attributes["gen_ai.input.messages"])
    assert "uses" in asked
    assert "sk-secret" not in asked  # content is recorded with Secret values masked
