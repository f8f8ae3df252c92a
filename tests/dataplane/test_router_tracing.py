"""The router's traces, read back from a real Jaeger: real router processes export OTLP to it,
the fake providers continue the trace from the ``traceparent`` the router sends, and the tests
assert the tree Jaeger holds.

One request is one trace: the router's request span (continuing the client's ``traceparent``),
one child span per attempt in order with its outcome, and under each attempt the provider's own
span. Spans carry the GenAI semantic conventions' names and attributes, tokens match what
``/v1/usage`` metered, and no prompt, answer or key is recorded unless content capture is
asked for. Log lines name the trace and span they were written in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from signalbox_fake import FakeProvider, Faults, Flavor
from tests.support.jaeger import Jaeger, Span, Trace, running_jaeger
from tests.support.router import (
    RouterProcess,
    policy,
    provider,
    router_env,
    running_fakes,
    running_router,
    secret,
)

MODEL = "gpt-4o-mini"
SLOW = "slow-model"
CACHED = "cached-model"
PROMPT = "a prompt that only content capture may record"
PROVIDER_KEY = "sk-provider-key-never-in-a-trace"
ROUTER = "signalbox-router"
FAKE = "fake-provider"


@dataclass
class World:
    jaeger: Jaeger
    router: RouterProcess
    content: RouterProcess  # the same, recording prompts and answers
    primary: FakeProvider
    backup: FakeProvider


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("tracing")
    with running_jaeger(base / "jaeger") as jaeger:
        fakes = TracerProvider(resource=Resource.create({"service.name": FAKE}))
        fakes.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(jaeger.endpoint + "/v1/traces"))
        )
        tracer = fakes.get_tracer("tests")
        primary = FakeProvider("primary", Flavor.OPENAI, [MODEL], tracer=tracer)
        backup = FakeProvider("backup", Flavor.OPENAI, [MODEL], tracer=tracer)
        slow = FakeProvider("slow", Flavor.OPENAI, [SLOW], faults=Faults(latency=0.5))
        primary.state.faults = primary.state.faults.model_copy(update={"api_key": PROVIDER_KEY})
        with running_fakes(primary, backup, slow), ExitStack() as stack:
            docs = [
                secret("key", {"apiKey": PROVIDER_KEY}),
                provider(
                    "primary",
                    "OpenAICompatible",
                    primary.base_url,
                    models=[MODEL],
                    priority=10,
                    secret=("key", "apiKey"),
                ),
                provider(
                    "backup", "OpenAICompatible", backup.base_url, models=[MODEL], priority=20
                ),
                policy(
                    "chat",
                    [MODEL],
                    ["primary", "backup"],
                    failover={"backoff": {"base": "10ms", "max": "20ms"}},
                ),
                # one request at a time: a second waits in line for the first
                provider(
                    "slow",
                    "OpenAICompatible",
                    slow.base_url,
                    models=[SLOW],
                    rateLimit={"maxConcurrency": 1},
                ),
                policy("one-at-a-time", [SLOW], ["slow"]),
                policy(
                    "cached", [CACHED], [{"name": "backup", "model": MODEL}], cache={"ttl": "1m"}
                ),
            ]
            router = stack.enter_context(
                running_router(base / "router", docs, env=jaeger.env(ROUTER))
            )
            content = stack.enter_context(
                running_router(
                    base / "content",
                    docs,
                    env=jaeger.env(
                        "signalbox-router-content",
                        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
                    ),
                )
            )
            try:
                yield World(jaeger, router, content, primary, backup)
            finally:
                fakes.shutdown()


@pytest.fixture(autouse=True)
def _clean(world: World) -> None:
    world.primary.clear_faults()
    world.primary.state.faults = world.primary.state.faults.model_copy(
        update={"api_key": PROVIDER_KEY}
    )
    world.backup.clear_faults()


def _client(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)


def _traceparent() -> tuple[str, str, str]:
    """A client's ``traceparent`` (sampled), its trace id and its span id."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _request_span(trace: Trace) -> Span:
    (span,) = [s for s in trace.spans if s.service != FAKE and s.tag("span.kind") == "server"]
    return span


def _attempts(trace: Trace) -> list[Span]:
    return sorted(trace.children(_request_span(trace)), key=lambda s: s.tag("signalbox.attempt"))


def test_a_request_is_one_trace_from_the_client_to_the_provider(world: World) -> None:
    parent, trace_id, client_span = _traceparent()
    answer = _client(world.router).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=50,
        temperature=0.5,
        extra_headers={"traceparent": parent},
    )
    trace = world.jaeger.wait_trace(trace_id, spans=3)

    request = _request_span(trace)
    assert request.parent_id == client_span  # the client's trace, continued
    assert request.name == f"chat {MODEL}"
    assert request.tags["gen_ai.operation.name"] == "chat"
    assert request.tags["gen_ai.request.model"] == MODEL
    assert request.tags["gen_ai.request.max_tokens"] == 50
    assert request.tags["gen_ai.request.temperature"] == 0.5
    assert request.tags["gen_ai.request.stream"] is False
    assert request.tags["http.response.status_code"] == 200
    assert request.tags["signalbox.policy"] == "chat"
    assert request.tags["signalbox.provider"] == "primary"
    assert request.tags["signalbox.attempts"] == 1
    assert answer.usage is not None
    assert request.tags["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert request.tags["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens

    (attempt,) = _attempts(trace)
    assert attempt.tags["span.kind"] == "client"
    assert attempt.name == f"chat {MODEL}"
    assert attempt.tags["gen_ai.provider.name"] == "openaicompatible"
    assert attempt.tags["gen_ai.response.model"] == answer.model
    assert attempt.tags["gen_ai.response.id"] == answer.id
    assert json.loads(attempt.tags["gen_ai.response.finish_reasons"]) == ["stop"]
    assert attempt.tags["server.address"] == "127.0.0.1"
    assert attempt.tags["server.port"] == world.primary.port
    assert attempt.tags["signalbox.outcome"] == "ok"
    assert attempt.tags["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens

    (upstream,) = trace.children(attempt)  # the provider joined through traceparent
    assert upstream.service == FAKE
    assert upstream.name == "POST /v1/chat/completions"


def test_a_failover_shows_each_attempt_in_order_with_its_outcome(world: World) -> None:
    world.primary.set_faults(status=503, api_key=PROVIDER_KEY)
    parent, trace_id, _ = _traceparent()
    resp = httpx.post(
        world.router.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"traceparent": parent},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    trace = world.jaeger.wait_trace(trace_id, spans=5)

    request = _request_span(trace)
    assert request.tags["signalbox.attempts"] == 2
    assert request.tags["signalbox.provider"] == "backup"
    first, second = _attempts(trace)
    assert (first.tags["signalbox.provider"], first.tags["signalbox.attempt"]) == ("primary", 1)
    assert first.tags["signalbox.outcome"] == "ServerError"
    assert first.tags["error.type"] == "ServerError"
    assert first.tags["http.response.status_code"] == 503
    assert first.tags["otel.status_code"] == "ERROR"
    assert (second.tags["signalbox.provider"], second.tags["signalbox.attempt"]) == ("backup", 2)
    assert second.tags["signalbox.outcome"] == "ok"
    assert first.start + first.duration <= second.start  # one after the other
    assert [s.service for s in trace.children(first)] == [FAKE]  # each provider joined
    assert [s.service for s in trace.children(second)] == [FAKE]
    assert request.tags["gen_ai.usage.output_tokens"] == second.tags["gen_ai.usage.output_tokens"]


def test_a_stream_says_its_time_to_first_token_and_commit_point(world: World) -> None:
    parent, trace_id, _ = _traceparent()
    stream = _client(world.router).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"traceparent": parent},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None
    trace = world.jaeger.wait_trace(trace_id, spans=3)
    request = _request_span(trace)
    assert request.tags["gen_ai.request.stream"] is True
    (attempt,) = _attempts(trace)
    assert 0 < attempt.tags["gen_ai.response.time_to_first_chunk"] < attempt.duration / 1e6
    assert "signalbox.commit_point" in attempt.events
    assert json.loads(attempt.tags["gen_ai.response.finish_reasons"]) == ["stop"]
    assert attempt.tags["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attempt.tags["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert request.duration >= attempt.duration  # the request's span ends with its stream


def test_time_waited_in_line_for_a_limit_is_on_the_request_span(world: World) -> None:
    parents = [_traceparent() for _ in range(2)]

    def ask(parent: str) -> None:
        _client(world.router).chat.completions.create(
            model=SLOW,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": parent},
        )

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ask, [p for p, _, _ in parents]))
    waits = sorted(
        _request_span(world.jaeger.wait_trace(t, spans=2, service=ROUTER)).tag(
            "signalbox.limiter_wait"
        )
        or 0.0
        for _, t, _ in parents
    )
    assert waits[0] == 0.0  # the first went at once (no attribute)
    assert 0.3 < waits[1] < 5  # the second waited for the first's 0.5 s answer


def test_a_cache_hit_is_a_request_without_attempts(world: World) -> None:
    body = {"model": CACHED, "messages": [{"role": "user", "content": "same"}], "temperature": 0}
    spans: list[tuple[Trace, Span]] = []
    for _ in range(2):
        parent, trace_id, _ = _traceparent()
        resp = httpx.post(
            world.router.url + "/v1/chat/completions",
            json=body,
            headers={"traceparent": parent},
            timeout=10,
        )
        assert resp.status_code == 200
        # a miss: the request and its attempt; a hit: the request alone
        trace = world.jaeger.wait_trace(trace_id, spans=2 - len(spans), service=ROUTER)
        spans.append((trace, _request_span(trace)))
    (_, miss), (hit_trace, hit) = spans
    assert miss.tags["signalbox.cache"] == "miss"
    assert hit.tags["signalbox.cache"] == "hit"
    assert hit.tags["signalbox.attempts"] == 0
    assert hit_trace.children(hit) == []


def _metered(router: RouterProcess) -> int:
    return sum(row["total_tokens"] for row in router.get("/v1/usage").json()["data"])


def test_tokens_in_the_traces_match_what_was_metered(world: World) -> None:
    before = _metered(world.content)
    trace_ids = []
    for n in range(3):
        parent, trace_id, _ = _traceparent()
        trace_ids.append(trace_id)
        _client(world.content).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"question {n} " * (n + 1)}],
            extra_headers={"traceparent": parent},
        )
    metered = _metered(world.content) - before
    requests = [_request_span(world.jaeger.wait_trace(t, spans=3)) for t in trace_ids]
    traced = sum(
        s.tags["gen_ai.usage.input_tokens"] + s.tags["gen_ai.usage.output_tokens"] for s in requests
    )
    assert metered > 0
    assert traced == metered


def test_no_prompt_answer_or_key_is_recorded_unless_content_is_asked_for(world: World) -> None:
    said = {}
    for name, router in (("plain", world.router), ("content", world.content)):
        parent, trace_id, _ = _traceparent()
        answer = _client(router).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"traceparent": parent},
        )
        trace = world.jaeger.wait_trace(trace_id, spans=3)
        text = json.dumps([s.tags for s in trace.spans] + [s.events for s in trace.spans])
        said[name] = (text, answer.choices[0].message.content or "")
    plain, answered = said["plain"]
    assert PROMPT not in plain
    assert answered not in plain
    content, answered = said["content"]
    assert PROMPT in content  # gen_ai.input.messages
    assert answered in content  # gen_ai.output.messages
    for text, _ in said.values():
        assert PROVIDER_KEY not in text


def test_log_lines_name_the_trace_and_span_of_their_request(world: World) -> None:
    parent, trace_id, _ = _traceparent()
    resp = httpx.post(
        world.router.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"traceparent": parent, "x-request-id": f"log-{trace_id[:8]}"},
        timeout=10,
    )
    assert resp.status_code == 200
    request = _request_span(world.jaeger.wait_trace(trace_id, spans=3))
    access = [
        line
        for line in world.router.log().splitlines()
        if f"log-{trace_id[:8]}" in line and "signalbox_router.access" in line
    ]
    assert len(access) == 1
    assert f"{trace_id}/{request.span_id}" in access[0]


def _backup_only(world: World) -> list[dict[str, Any]]:
    """A router's manifests with one provider, the backup fake."""
    return [
        provider("backup", "OpenAICompatible", world.backup.base_url, models=[MODEL]),
        policy("chat", [MODEL], ["backup"]),
    ]


def test_traces_go_over_grpc_when_asked(world: World, tmp_path: Path) -> None:
    docs = _backup_only(world)
    env = world.jaeger.env(
        "signalbox-router-grpc",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=world.jaeger.grpc_endpoint,
    )
    with running_router(tmp_path / "grpc", docs, env=env) as router:
        parent, trace_id, _ = _traceparent()
        _client(router).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": parent},
        )
        trace = world.jaeger.wait_trace(trace_id, spans=2, service="signalbox-router-grpc")
    assert {s.name for s in trace.of("signalbox-router-grpc")} == {f"chat {MODEL}"}


def test_a_sampling_ratio_of_zero_exports_nothing_but_still_passes_the_context_on(
    world: World, tmp_path: Path
) -> None:
    docs = _backup_only(world)
    env = world.jaeger.env(
        "signalbox-router-unsampled",
        OTEL_TRACES_SAMPLER="traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    with running_router(tmp_path / "unsampled", docs, env=env) as router:
        seen = len(world.backup.seen)
        for _ in range(5):
            _client(router).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    assert all("traceparent" in r.header_names for r in world.backup.seen[seen:])
    assert "signalbox-router-unsampled" not in world.jaeger.services()


def test_with_tracing_off_nothing_is_sent_upstream(world: World, tmp_path: Path) -> None:
    docs = _backup_only(world)
    with running_router(tmp_path / "off", docs) as router:
        seen = len(world.backup.seen)
        _client(router).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        assert "tracing on" not in router.log()
    (request,) = world.backup.seen[seen:]
    assert "traceparent" not in request.header_names


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
    ],
)
def test_a_tracing_setting_it_cannot_follow_stops_the_router_naming_it(
    world: World, tmp_path: Path, variable: str, value: str
) -> None:
    env = {
        **router_env(),
        **world.jaeger.env(ROUTER, OTEL_TRACES_SAMPLER="traceidratio"),
        variable: value,
    }
    (tmp_path / "m").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signalbox_router",
            "--manifests",
            str(tmp_path / "m"),
            "--port",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert re.search(rf"signalbox-router: {variable} .*{value}", proc.stderr), proc.stderr
