"""Usage and cost metering: Prometheus metrics and the JSON usage summary.

Tokens come from the upstream's own usage (the router asks OpenAI-style streams for it); cost
is tokens times the model's declared prices. Nothing here ever sees keys or prompts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import prometheus_client as prom
from prometheus_client.core import CounterMetricFamily, Metric

from signalbox_api.primitives import parse_money
from signalbox_api.provider import Cost

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_MILLION = Decimal(1_000_000)


@dataclass
class _Row:
    """Totals of one (model, provider) pair; published to Prometheus when it scrapes."""

    latency: Any = None
    codes: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    successes: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)
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
        r.register(self)

    def _row(self, model: str, provider: str) -> _Row:
        row = self._rows.get((model, provider))
        if row is None:
            row = _Row(latency=self.latency.labels(model, provider))
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
        """Count one answered request; plain arithmetic, so the hot path takes no locks."""
        row = self._row(model, provider)
        row.codes[code] = row.codes.get(code, 0) + 1
        row.requests += 1
        row.seconds += seconds
        if code < 400:
            row.successes += 1
            row.latency.observe(seconds)
        if usage is not None:
            prompt, completion = usage
            row.tokens_in += prompt
            row.tokens_out += completion
            spent = cost_of(price, prompt, completion)
            if spent:
                currency = price.currency if price else "USD"
                row.cost[currency] = row.cost.get(currency, Decimal(0)) + spent

    def collect(self) -> Iterator[Metric]:
        """The per-request counters, built from the totals at scrape time."""
        requests = CounterMetricFamily(
            "signalbox_router_requests",
            "Requests answered, by model, provider and status code.",
            labels=["model", "provider", "code"],
        )
        tokens = CounterMetricFamily(
            "signalbox_router_tokens",
            "Tokens from upstream usage.",
            labels=["model", "provider", "direction"],
        )
        cost = CounterMetricFamily(
            "signalbox_router_cost",
            "Cost from declared prices.",
            labels=["model", "provider", "currency"],
        )
        for (model, provider), row in list(self._rows.items()):
            for code, count in row.codes.items():
                requests.add_metric([model, provider, str(code)], count)
            tokens.add_metric([model, provider, "input"], row.tokens_in)
            tokens.add_metric([model, provider, "output"], row.tokens_out)
            for currency, amount in row.cost.items():
                cost.add_metric([model, provider, currency], float(amount))
        yield from (requests, tokens, cost)

    def summary(self) -> dict[str, Any]:
        """The JSON usage summary per model and provider."""
        rows = []
        for (model, provider), row in sorted(self._rows.items()):
            rows.append(
                {
                    "model": model,
                    "provider": provider,
                    "request_count": row.requests,
                    "total_tokens": row.tokens_in + row.tokens_out,
                    "total_cost": str(sum(row.cost.values(), Decimal(0)).normalize()),
                    "avg_response_time": round(row.seconds / row.requests, 4)
                    if row.requests
                    else 0,
                    "success_rate": round(row.successes / row.requests, 4) if row.requests else 0,
                }
            )
        return {"object": "list", "data": rows}
