"""The operator's traces in a real Jaeger: a span per probe and per status write, and a circuit
that opened followed from its write to the probes that opened it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.cluster import Cluster
from tests.support.jaeger import Jaeger, Span, running_jaeger
from tests.support.operator import OperatorProcess, wait_for
from tests.support.router import provider

SERVICE = "signalbox-operator"


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    with running_jaeger(tmp_path / "jaeger") as j:
        yield j


def _writes(jaeger: Jaeger, name: str) -> list[Span]:
    spans = [s for t in jaeger.traces(SERVICE) for s in t.spans]
    return [s for s in spans if s.name == "status write" and s.tag("signalbox.provider") == name]


def test_an_opened_circuit_leads_from_its_write_to_the_probes_that_opened_it(
    cluster: Cluster, namespace: str, jaeger: Jaeger, tmp_path: Path
) -> None:
    with FakeProvider("cloud", Flavor.OPENAI, ["m"]).running_in_thread() as fake:
        op = OperatorProcess(
            cluster, namespace, tmp_path / "operator.log", env=jaeger.env(SERVICE)
        ).start()
        try:
            cluster.apply(
                provider(
                    "cloud",
                    "OpenAICompatible",
                    fake.base_url,
                    models=["m"],
                    healthCheck={"interval": "1s", "timeout": "800ms", "unhealthyThreshold": 2},
                    circuitBreaker={"failureThreshold": 2, "openDuration": "30s"},
                ),
                namespace,
            )
            cluster.kubectl(
                "wait", "-n", namespace, "--for=condition=Ready", "llmp/cloud", "--timeout=20s"
            )
            fake.set_faults(status=503)

            def opened() -> Span | None:
                found = [
                    w
                    for w in _writes(jaeger, "cloud")
                    if w.tag("signalbox.circuit.state") == "Open"
                    and w.tag("signalbox.circuit.previous_state") == "Closed"
                ]
                return found[0] if found else None

            write = wait_for(opened, 30, "the write that opened the circuit, in Jaeger")
        finally:
            op.stop()
    assert write.tags["signalbox.write.outcome"] == "written"
    assert write.tags["signalbox.ready"] is False
    assert write.tags["k8s.namespace.name"] == namespace
    assert write.links, "a write links to the probes since the last one"
    probes = [jaeger.span(trace_id, span_id) for trace_id, span_id in write.links]
    assert all(p is not None and p.name == "probe" for p in probes)
    failed = [p for p in probes if p is not None and p.tag("signalbox.probe.outcome") != "Success"]
    assert failed, [p.tags for p in probes if p is not None]
    last = max(failed, key=lambda p: p.start)
    assert last.tags["signalbox.circuit.state"] == "Open"  # the probe that opened it
    assert last.tags["http.response.status_code"] == 503
    assert last.tags["otel.status_code"] == "ERROR"
    assert last.tags["signalbox.provider"] == "cloud"
    assert last.tags["span.kind"] == "client"
    assert all(p is not None and p.start <= write.start for p in probes)
