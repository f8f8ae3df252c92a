"""Prometheus metrics of the operator, in a registry of its own (served on --metrics-port)."""

from __future__ import annotations

import contextlib

import prometheus_client as prom

from signalbox_api.provider import CircuitState
from signalbox_providers.outcomes import Outcome

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        self.registry = registry or prom.CollectorRegistry()
        r = self.registry
        self.provider_up = prom.Gauge(
            "signalbox_provider_up",
            "1 when the LLMProvider is Ready, else 0.",
            ["namespace", "provider", "type"],
            registry=r,
        )
        self.circuit_state = prom.Gauge(
            "signalbox_provider_circuit_state",
            "1 for the circuit's current state (Closed, Open, HalfOpen), 0 for the others.",
            ["namespace", "provider", "state"],
            registry=r,
        )
        self.probe_duration = prom.Histogram(
            "signalbox_probe_duration_seconds",
            "Duration of health probes.",
            ["type"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.probe_outcomes = prom.Counter(
            "signalbox_probe_outcomes_total",
            "Health probes by outcome class.",
            ["namespace", "provider", "outcome"],
            registry=r,
        )
        self.status_writes = prom.Counter(
            "signalbox_status_writes_total",
            "Status writes to the API server, by plural.",
            ["kind"],
            registry=r,
        )
        self.policy_eligible = prom.Gauge(
            "signalbox_policy_eligible_providers",
            "Providers that can take a RoutingPolicy's traffic now.",
            ["namespace", "policy"],
            registry=r,
        )
        self.probers = prom.Gauge("signalbox_probers", "Provider probe loops running.", registry=r)
        self.probes_shared = prom.Counter(
            "signalbox_probes_shared",
            "Probes answered by an identical provider's probe (same endpoint, key and check).",
            registry=r,
        )
        self.probe_waits = prom.Counter(
            "signalbox_probe_waits",
            "Probes that waited for their host's probe rate or a free slot before they began.",
            registry=r,
        )

    def set_provider(
        self, namespace: str, name: str, type_: str, ready: bool, state: CircuitState
    ) -> None:
        self.provider_up.labels(namespace, name, type_).set(1 if ready else 0)
        for s in CircuitState:
            self.circuit_state.labels(namespace, name, s.value).set(1 if s == state else 0)

    def forget_provider(self, namespace: str, name: str, type_: str) -> None:
        with contextlib.suppress(KeyError):
            self.provider_up.remove(namespace, name, type_)
        for s in CircuitState:
            with contextlib.suppress(KeyError):
                self.circuit_state.remove(namespace, name, s.value)
        for outcome in Outcome:
            with contextlib.suppress(KeyError):
                self.probe_outcomes.remove(namespace, name, outcome.value)
