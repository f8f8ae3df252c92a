"""What the router holds right now, per provider, as Prometheus gauges read at scrape time.

In-flight attempts, limiter slots taken and the local breaker's trials out: each must come
back to zero when traffic stops, whatever the traffic did. Operators alert on a gauge stuck
above zero; the hostile-traffic tests assert it. Only providers of the current snapshot get a
series, so nothing a client sends adds one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from signalbox_router.state import RouterState


class Holdings:
    """A collector over a router's state."""

    def __init__(self, state: RouterState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        names = sorted(state.snapshot.providers)
        gauges = (
            ("signalbox_router_in_flight", "Attempts under way.", state.in_flight.get),
            ("signalbox_router_limiter_slots_in_use", "Limiter slots taken.", state.slots_in_use),
            ("signalbox_router_breaker_trials", "Breaker trials out.", state.breakers.trials),
        )
        for metric, doc, read in gauges:
            family = GaugeMetricFamily(metric, doc, labels=["provider"])
            for name in names:
                family.add_metric([name], float(read(name) or 0))
            yield family
