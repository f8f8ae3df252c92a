"""Metering: histogram buckets as Prometheus counts them, exact cost from declared prices, and
the exposition a scrape gets."""

from __future__ import annotations

from decimal import Decimal

import prometheus_client as prom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signalbox_api.provider import Cost
from signalbox_router.metering.meter import Histogram, Meter

PRICE = Cost.model_validate({"inputPerMTok": "0.15", "outputPerMTok": "0.60"})


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0.0, "0.1"), (0.1, "0.1"), (0.1000001, "1.0"), (1.0, "1.0"), (7.0, "+Inf")],
)
def test_a_value_on_a_bound_counts_in_that_bucket(value: float, bucket: str) -> None:
    h = Histogram((0.1, 1.0))
    h.observe(value)
    counts = dict(h.cumulative())
    assert counts["+Inf"] == 1
    first = next(le for le, n in h.cumulative() if n)
    assert first == bucket
    assert h.total == value


def test_cumulative_counts_add_up() -> None:
    h = Histogram((1, 2, 3))
    for v in (0.5, 1.5, 1.7, 2.5, 9):
        h.observe(v)
    assert h.cumulative() == [("1.0", 1), ("2.0", 3), ("3.0", 4), ("+Inf", 5)]


def test_cost_is_exact_and_follows_price_changes() -> None:
    meter = Meter()
    for _ in range(3):
        meter.record("m", "p", code=200, seconds=0.1, usage=(1000, 500), price=PRICE)
    dearer = Cost.model_validate({"inputPerMTok": "2.50", "outputPerMTok": "10.00"})
    meter.record("m", "p", code=200, seconds=0.1, usage=(1000, 0), price=dearer)
    meter.record("m", "p", code=200, seconds=0.1, usage=(7, 7))  # no declared price
    row = meter.summary()["data"][0]
    # 3 * (1000 * 0.15 + 500 * 0.60) / 1e6 + 1000 * 2.50 / 1e6
    assert Decimal(row["total_cost"]) == Decimal("0.00385")
    assert row["total_tokens"] == 3 * 1500 + 1000 + 14
    assert row["request_count"] == 5


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_a_scrape_shows_requests_tokens_cost_latency_ttft_and_attempts() -> None:
    meter = Meter()
    meter.record("m", "p", code=200, seconds=0.02, usage=(10, 20), price=PRICE)
    meter.record("m", "p", code=502, seconds=1.5)
    meter.first_token("m", "p", 0.003)
    meter.attempts.observe(2)
    text = prom.generate_latest(meter.registry).decode()
    mp = {"model": "m", "provider": "p"}
    assert sample(text, "signalbox_router_requests_total", **mp, code="200") == 1
    assert sample(text, "signalbox_router_requests_total", **mp, code="502") == 1
    assert (
        sample(text, "signalbox_router_tokens_total", **mp, direction="output", source="upstream")
        == 20
    )
    assert sample(text, "signalbox_router_cost_total", **mp, currency="USD") == 1.35e-05
    # Only the success is timed: one answer within 25 ms, none within 10 ms.
    latency = "signalbox_router_request_duration_seconds"
    assert sample(text, f"{latency}_bucket", **mp, le="0.01") == 0
    assert sample(text, f"{latency}_bucket", **mp, le="0.025") == 1
    assert sample(text, f"{latency}_count", **mp) == 1
    ttft = "signalbox_router_time_to_first_token_seconds"
    assert sample(text, f"{ttft}_bucket", **mp, le="0.005") == 1
    assert sample(text, "signalbox_router_attempts_bucket", le="1.0") == 0
    assert sample(text, "signalbox_router_attempts_bucket", le="2.0") == 1
    assert sample(text, "signalbox_router_attempts_sum") == 2


def test_answers_count_once_per_request_under_the_status_the_client_got() -> None:
    meter = Meter()
    meter.record("m", "p", code=500, seconds=0.1)  # an attempt that failed over ...
    meter.record("m", "q", code=200, seconds=0.1)  # ... and the one that answered
    meter.answered("/v1/chat/completions", "m", 200)
    meter.answered("/v1/chat/completions", "m", 503)  # no eligible provider: no attempt
    meter.answered("/v1/messages", "", 400)  # a body without a model
    text = prom.generate_latest(meter.registry).decode()
    chat = {"route": "/v1/chat/completions", "model": "m"}
    assert sample(text, "signalbox_router_responses_total", **chat, code="200") == 1
    assert sample(text, "signalbox_router_responses_total", **chat, code="503") == 1
    assert (
        sample(text, "signalbox_router_responses_total", route="/v1/messages", model="", code="400")
        == 1
    )
    assert sample(text, "signalbox_router_requests_total", model="m", provider="p", code="500") == 1
