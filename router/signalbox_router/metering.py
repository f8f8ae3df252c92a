"""Usage and cost metering: Prometheus metrics and the JSON usage summary.

Tokens come from the upstream's own usage (the router asks OpenAI-style streams for it); cost
is tokens times the model's declared prices. Nothing here ever sees keys or prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import prometheus_client as prom

from signalbox_api.primitives import parse_money
from signalbox_api.provider import Cost

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_MILLION = Decimal(1_000_000)


@dataclass
class _Row:
    """Totals of one (model, provider) pair, with its metric children looked up once."""

    children: tuple[Any, ...] = ()
    requests: int = 0
    successes: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    seconds: float = 0.0


def cost_of(cost: Cost | None, prompt: int, completion: int) -> Decimal:
    if cost is None:
        return Decimal(0)
    return (
        parse_money(cost.input_per_m_tok) * prompt + parse_money(cost.output_per_m_tok) * completion
    ) / _MILLION


class Meter:
    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        r = self.registry = registry or prom.CollectorRegistry()
        self.requests = prom.Counter(
            "signalbox_router_requests_total",
            "Requests answered, by model, provider and status code.",
            ["model", "provider", "code"],
            registry=r,
        )
        self.errors = prom.Counter(
            "signalbox_router_upstream_errors_total",
            "Failed upstream attempts by outcome class.",
            ["provider", "outcome"],
            registry=r,
        )
        self.attempts = prom.Histogram(
            "signalbox_router_attempts",
            "Attempts per request.",
            buckets=(1, 2, 3, 4, 5, 10),
            registry=r,
        )
        self.failovers = prom.Counter(
            "signalbox_router_failovers_total",
            "Requests moved on from a provider, by the reason.",
            ["provider", "outcome"],
            registry=r,
        )
        self.latency = prom.Histogram(
            "signalbox_router_request_duration_seconds",
            "Time to the whole answer.",
            ["model", "provider"],
            buckets=_LATENCY,
            registry=r,
        )
        self.ttft = prom.Histogram(
            "signalbox_router_time_to_first_token_seconds",
            "Time to the first streamed chunk.",
            ["model", "provider"],
            buckets=_LATENCY,
            registry=r,
        )
        self.tokens = prom.Counter(
            "signalbox_router_tokens_total",
            "Tokens from upstream usage.",
            ["model", "provider", "direction"],
            registry=r,
        )
        self.cost = prom.Counter(
            "signalbox_router_cost_total",
            "Cost from declared prices.",
            ["model", "provider", "currency"],
            registry=r,
        )
        self.limiter_waits = prom.Counter(
            "signalbox_router_limiter_waits_total",
            "Requests that waited for a rate limit, by priority.",
            ["priority"],
            registry=r,
        )
        self.limited = prom.Counter(
            "signalbox_router_rate_limited_total",
            "Requests refused with 429 after limits bound.",
            ["priority"],
            registry=r,
        )
        self._rows: dict[tuple[str, str], _Row] = {}
        self._codes: dict[tuple[str, str, int], Any] = {}
        self._costs: dict[tuple[str, str, str], Any] = {}

    def _row(self, model: str, provider: str) -> _Row:
        row = self._rows.get((model, provider))
        if row is None:
            row = _Row(
                children=(
                    self.latency.labels(model, provider),
                    self.tokens.labels(model, provider, "input"),
                    self.tokens.labels(model, provider, "output"),
                )
            )
            self._rows[(model, provider)] = row
        return row

    def record(
        self,
        model: str,
        provider: str,
        *,
        code: int,
        seconds: float,
        usage: tuple[int, int] | None = None,
        price: Cost | None = None,
    ) -> None:
        row = self._row(model, provider)
        latency, tokens_in, tokens_out = row.children
        counter = self._codes.get((model, provider, code))
        if counter is None:
            counter = self.requests.labels(model, provider, str(code))
            self._codes[(model, provider, code)] = counter
        counter.inc()
        row.requests += 1
        row.seconds += seconds
        if code < 400:
            row.successes += 1
            latency.observe(seconds)
        if usage is not None:
            prompt, completion = usage
            tokens_in.inc(prompt)
            tokens_out.inc(completion)
            row.tokens += prompt + completion
            spent = cost_of(price, prompt, completion)
            if spent:
                row.cost += spent
                currency = price.currency if price else "USD"
                key = (model, provider, currency)
                child = self._costs.get(key)
                if child is None:
                    child = self._costs[key] = self.cost.labels(*key)
                child.inc(float(spent))

    def summary(self) -> dict[str, Any]:
        """The JSON usage summary per model and provider."""
        rows = []
        for (model, provider), row in sorted(self._rows.items()):
            rows.append(
                {
                    "model": model,
                    "provider": provider,
                    "request_count": row.requests,
                    "total_tokens": row.tokens,
                    "total_cost": str(row.cost.normalize()),
                    "avg_response_time": round(row.seconds / row.requests, 4)
                    if row.requests
                    else 0,
                    "success_rate": round(row.successes / row.requests, 4) if row.requests else 0,
                }
            )
        return {"object": "list", "data": rows}
