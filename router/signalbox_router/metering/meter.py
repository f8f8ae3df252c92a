"""Usage and cost metering: Prometheus metrics and the JSON usage summary.

Tokens come from the upstream's own usage (the router asks OpenAI-style streams for it); when an
upstream sends none (llama.cpp's server ignores the ask on streams), the router's own estimate
(``estimates.estimated_usage``) counts instead, under ``source="estimated"`` in the token metric
and as ``estimated_tokens`` in the usage summary, so such traffic is never metered as 0. Cost
is tokens times the model's declared prices. Nothing here ever sees keys or prompts. What every
request touches is kept with plain arithmetic (the request path takes no locks) and turned into
Prometheus metrics when it scrapes.

Model labels are keyed only by declared names (:mod:`signalbox_router.metering.metric_labels`),
so no client can grow the series (or the usage summary) without bound."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import prometheus_client as prom
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from signalbox_api.primitives import parse_money
from signalbox_api.provider import Cost
from signalbox_router.metering.metric_labels import OTHER, UNFOLLOWED_NAMES, Labels
from signalbox_router.routing.snapshot import Snapshot

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_MILLION = Decimal(1_000_000)


class Histogram:
    """Counts per bucket (``le``: at most the bound) and the sum of what was observed."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


@dataclass
class _Usage:
    """What one (model, provider) pair served: the usage summary's row (for everyone, or for
    one client key's tenant)."""

    requests: int = 0
    successes: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    estimated_in: int = 0  # tokens the router counted itself (the upstream sent no usage)
    estimated_out: int = 0
    # Tokens by the prices they were served at: (input, output per million, currency).
    priced: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    seconds: float = 0.0

    def cost(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for (per_in, per_out, currency), (prompt, completion) in list(self.priced.items()):
            spent = (parse_money(per_in) * prompt + parse_money(per_out) * completion) / _MILLION
            out[currency] = out.get(currency, Decimal(0)) + spent
        return out

    def add(
        self,
        code: int,
        seconds: float,
        usage: tuple[int, int] | None,
        price: Cost | None,
        estimated: bool,
    ) -> None:
        self.requests += 1
        self.seconds += seconds
        if code < 400:
            self.successes += 1
        if usage is None:
            return
        prompt, completion = usage
        if estimated:
            self.estimated_in += prompt
            self.estimated_out += completion
        else:
            self.tokens_in += prompt
            self.tokens_out += completion
        if price is not None:  # priced at scrape time, exactly
            key = (price.input_per_m_tok, price.output_per_m_tok, price.currency)
            totals = self.priced.get(key)
            if totals is None:
                totals = self.priced[key] = [0, 0]
            totals[0] += prompt
            totals[1] += completion

    def summary(self, model: str, provider: str) -> dict[str, Any]:
        requests = self.requests
        return {
            "model": model,
            "provider": provider,
            "request_count": requests,
            "total_tokens": self.tokens_in
            + self.tokens_out
            + self.estimated_in
            + self.estimated_out,
            "estimated_tokens": self.estimated_in + self.estimated_out,
            "total_cost": str(sum(self.cost().values(), Decimal(0)).normalize()),
            "avg_response_time": round(self.seconds / requests, 4) if requests else 0,
            "success_rate": round(self.successes / requests, 4) if requests else 0,
        }


@dataclass
class _Row(_Usage):
    """Totals of one (model, provider) pair, with what the metrics add to the summary."""

    latency: Histogram = field(default_factory=lambda: Histogram(_LATENCY))
    ttft: Histogram = field(default_factory=lambda: Histogram(_LATENCY))
    codes: dict[int, int] = field(default_factory=dict)


class Meter:
    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        r = self.registry = registry or prom.CollectorRegistry()
        self.errors = prom.Counter(
            "signalbox_router_upstream_errors_total",
            "Failed upstream attempts by outcome class.",
            ["provider", "outcome"],
            registry=r,
        )
        self.attempts = Histogram((1, 2, 3, 4, 5, 10))
        self.failovers = prom.Counter(
            "signalbox_router_failovers_total",
            "Requests moved on from a provider, by the reason.",
            ["provider", "outcome"],
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
        # Answers as the clients received them: (route, model, status) -> count.
        self._answers: dict[tuple[str, str, int], int] = {}
        # The same rows per tenant (a client key's digest), for a client's own /v1/usage.
        self._tenants: dict[str, dict[tuple[str, str], _Usage]] = {}
        self._source: Callable[[], Snapshot] | None = None
        self._seen: Snapshot | None = None
        self._labels: Labels | None = None
        self._free: set[str] = set()  # names taken as given, while nothing is followed
        r.register(self)

    def follow(self, source: Callable[[], Snapshot]) -> None:
        """Label models by what the snapshot ``source()`` returns declares."""
        self._source = source
        self._seen = None

    def label(self, model: str) -> str:
        """The declared name ``model`` counts under (see the module), or ``other``."""
        source = self._source
        if source is None:
            free = self._free
            if model not in free and len(free) < UNFOLLOWED_NAMES:
                free.add(model)
            return model if model in free else OTHER
        snapshot = source()
        labels = self._labels
        if labels is None or snapshot is not self._seen:  # a new snapshot: read it once
            self._seen = snapshot
            labels = self._labels = Labels(snapshot)
        return labels(model)

    def _row(self, model: str, provider: str) -> _Row:
        model = self.label(model)
        row = self._rows.get((model, provider))
        if row is None:
            row = self._rows[(model, provider)] = _Row()
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
        estimated: bool = False,
        tenant: str | None = None,
    ) -> None:
        """Count one answered request; ``estimated``: the router counted ``usage`` itself;
        ``tenant``: whose client key asked, when clients authenticate."""
        row = self._row(model, provider)
        row.codes[code] = row.codes.get(code, 0) + 1
        if code < 400:
            row.latency.observe(seconds)
        row.add(code, seconds, usage, price, estimated)
        if tenant is not None:
            rows = self._tenants.setdefault(tenant, {})
            key = (self.label(model), provider)
            own = rows.get(key)
            if own is None:
                own = rows[key] = _Usage()
            own.add(code, seconds, usage, price, estimated)

    def answered(self, route: str, model: str, status: int) -> None:
        """Count one answer to a model route under the status its client received (499: the
        client left before it): failed-over attempts, refusals and 503s alike, once each."""
        key = (route, self.label(model) if model else "", status)
        self._answers[key] = self._answers.get(key, 0) + 1

    def first_token(self, model: str, provider: str, seconds: float) -> None:
        self._row(model, provider).ttft.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        """The per-request metrics, built from the totals at scrape time."""
        requests = CounterMetricFamily(
            "signalbox_router_requests",
            "Attempts answered, by model, provider and the status code of the attempt (a"
            " request that failed over counts at each provider it tried).",
            labels=["model", "provider", "code"],
        )
        tokens = CounterMetricFamily(
            "signalbox_router_tokens",
            "Tokens from upstream usage (source upstream) or the router's own count when the"
            " upstream sent none (source estimated).",
            labels=["model", "provider", "direction", "source"],
        )
        cost = CounterMetricFamily(
            "signalbox_router_cost",
            "Cost from declared prices.",
            labels=["model", "provider", "currency"],
        )
        latency = HistogramMetricFamily(
            "signalbox_router_request_duration_seconds",
            "Time to the whole answer.",
            labels=["model", "provider"],
        )
        ttft = HistogramMetricFamily(
            "signalbox_router_time_to_first_token_seconds",
            "Time to the first streamed chunk.",
            labels=["model", "provider"],
        )
        attempts = HistogramMetricFamily("signalbox_router_attempts", "Attempts per request.")
        responses = CounterMetricFamily(
            "signalbox_router_responses",
            "Answers to model routes as their clients received them, by route, model and status"
            " code (499: the client left first); one per request, whatever its attempts.",
            labels=["route", "model", "code"],
        )
        for (route, model, status), count in list(self._answers.items()):
            responses.add_metric([route, model, str(status)], count)
        attempts.add_metric([], self.attempts.cumulative(), self.attempts.total)
        for (model, provider), row in list(self._rows.items()):
            for code, count in list(row.codes.items()):
                requests.add_metric([model, provider, str(code)], count)
            tokens.add_metric([model, provider, "input", "upstream"], row.tokens_in)
            tokens.add_metric([model, provider, "output", "upstream"], row.tokens_out)
            if row.estimated_in or row.estimated_out:
                tokens.add_metric([model, provider, "input", "estimated"], row.estimated_in)
                tokens.add_metric([model, provider, "output", "estimated"], row.estimated_out)
            for currency, amount in row.cost().items():
                cost.add_metric([model, provider, currency], float(amount))
            latency.add_metric([model, provider], row.latency.cumulative(), row.latency.total)
            if any(row.ttft.counts):
                ttft.add_metric([model, provider], row.ttft.cumulative(), row.ttft.total)
        yield from (requests, tokens, cost, latency, ttft, attempts, responses)

    def summary(self, tenant: str | None = None) -> dict[str, Any]:
        """The JSON usage summary per model and provider: everyone's, or one tenant's."""
        table: dict[tuple[str, str], Any] = (
            self._rows if tenant is None else self._tenants.get(tenant, {})
        )
        rows = [usage.summary(*names) for names, usage in sorted(table.items())]
        return {"object": "list", "data": rows}
