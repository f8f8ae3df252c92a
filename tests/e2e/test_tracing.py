"""Tracing on the node, as the chart sets it: the routers and operators in their pods send OTLP
to a Jaeger on the node's address, and a request's trace comes back from it with the router's
request span, its attempt and the provider it reached; the operator's probes are there too."""

from __future__ import annotations

import os

import httpx

from tests.e2e.conftest import Release
from tests.e2e.workloads import CHAT
from tests.support.node import port_forward
from tests.support.operator import wait_for


def test_a_request_through_the_chart_router_is_traced_in_the_backend_the_values_name(
    release: Release,
) -> None:
    trace_id, client_span = os.urandom(16).hex(), os.urandom(8).hex()
    with port_forward(release.cluster, release.namespace, f"svc/{release.name}-router", 80) as port:
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": CHAT, "messages": [{"role": "user", "content": "traced?"}]},
            headers={
                "Authorization": f"Bearer {release.api_key}",
                "traceparent": f"00-{trace_id}-{client_span}-01",
            },
            timeout=30,
        )
    assert resp.status_code == 200, resp.text
    trace = release.jaeger.wait_trace(trace_id, spans=2, timeout=60)
    (request,) = [s for s in trace.spans if s.parent_id == client_span]
    assert request.service == "signalbox-router"
    assert request.name == f"chat {CHAT}"
    assert request.tags["http.response.status_code"] == 200
    (attempt,) = trace.children(request)
    assert attempt.tags["signalbox.provider"] == resp.headers["x-signalbox-provider"]
    assert attempt.tags["signalbox.outcome"] == "ok"
    assert attempt.tags["span.kind"] == "client"

    def probes() -> list[str] | None:
        names = [
            str(s.tag("signalbox.provider"))
            for t in release.jaeger.traces("signalbox-operator")
            for s in t.spans
            if s.name == "probe"
        ]
        return names or None

    assert attempt.tags["signalbox.provider"] in wait_for(probes, 60, "the operator's probe spans")
