"""Everything the router keeps per process: the current snapshot and its own fast signals
(local breakers, limiters, load and latency per provider and per endpoint)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from signalbox_api.provider import RateLimit
from signalbox_router import redaction
from signalbox_router.limits.breaker import Breakers
from signalbox_router.limits.limiters import ProviderLimiter
from signalbox_router.limits.priority import PriorityQueueGate
from signalbox_router.metering import holdings
from signalbox_router.metering.meter import Meter
from signalbox_router.routing.selection import LocalView
from signalbox_router.routing.snapshot import ProviderEntry, Snapshot

EWMA = 0.2


@dataclass
class RouterState:
    _snapshot: Snapshot = field(default_factory=Snapshot)
    synced_at: float = 0.0  # monotonic time the source (cluster or folder) was last read
    # Background tasks down or failing now (a crash, a missing folder), by name, with the reason;
    # /readyz is 503 while any is here.
    failing: dict[str, str] = field(default_factory=dict)
    # What the source holds that could not be used, each naming the file or object and why
    # (never a value); its last good version serves meanwhile.
    problems: tuple[str, ...] = ()
    meter: Meter = field(default_factory=Meter)
    breakers: Breakers = field(default_factory=Breakers)
    in_flight: dict[str, int] = field(default_factory=dict)
    endpoint_load: dict[str, int] = field(default_factory=dict)
    last_used: dict[str, float] = field(default_factory=dict)
    success_rate: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)  # outcome class, by provider
    queue_depth: dict[str, float] = field(default_factory=dict)  # vLLM waiting, by endpoint
    queue_seen: dict[str, float] = field(default_factory=dict)  # when each depth was read
    rng: random.Random = field(default_factory=random.Random)
    endpoint_turn: int = 0  # where the next tie between endpoints starts (round robin)
    # Requests waiting for rate-limited capacity, one line per model name.
    waiting: dict[str, PriorityQueueGate[object]] = field(default_factory=dict)
    _limiters: dict[str, tuple[RateLimit | None, ProviderLimiter]] = field(default_factory=dict)
    # Builds a provider's limiter from its rateLimit; shared_budget's when limits are shared.
    make_limiter: Callable[[str, RateLimit | None], ProviderLimiter] = field(
        default=lambda _name, spec: ProviderLimiter.from_spec(spec)
    )
    # Extra lines for /readyz, by name (shared budgets: their mode).
    reports: dict[str, Callable[[], object]] = field(default_factory=dict)
    _secrets: tuple[bytes, ...] = ()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @snapshot.setter
    def snapshot(self, new: Snapshot) -> None:
        """Swap in a new snapshot; a breaker opened for a refused key closes when the key
        changed or the operator has since seen the provider answer."""
        old, self._snapshot = self._snapshot, new
        for name, entry in new.providers.items():
            before = old.providers.get(name)
            self.breakers.key_may_work(
                name,
                key_changed=before is not None and before.api_key != entry.api_key,
                probe_ok_at=entry.last_success,
            )
        self.breakers.forget(set(new.providers))
        self._secrets = redaction.secret_values(e.api_key for e in new.providers.values())

    def secrets(self) -> tuple[bytes, ...]:
        """Every Secret value the router holds, to mask in what upstreams send back."""
        return self._secrets

    def __post_init__(self) -> None:
        self.meter.registry.register(holdings.Holdings(self))
        self._view = LocalView(
            breaker_open=lambda name: self.breakers.is_open(name, time.monotonic()),
            cooling=lambda name: self.breakers.cooling(name, time.monotonic()),
            in_flight=self.in_flight,
            last_used=self.last_used,
            success_rate=self.success_rate,
            latency=self.latency,
            rng=self.rng,
        )

    def slots_in_use(self, name: str) -> int:
        current = self._limiters.get(name)
        return current[1].in_flight if current is not None else 0

    def view(self) -> LocalView:
        """What selection may know of this process, for one request (it turns round robin)."""
        self._view.turn += 1
        return self._view

    def line(self, model: str) -> PriorityQueueGate[object]:
        line = self.waiting.get(model)
        if line is None:
            line = self.waiting[model] = PriorityQueueGate()
        return line

    def leave_line(self, model: str, ticket: object) -> None:
        """Take ``ticket`` out of ``model``'s line; an empty line goes (a glob policy lets
        clients name any number of models, and each must not leave a line behind)."""
        line = self.waiting.get(model)
        if line is not None:
            line.remove(ticket)
            if not line:
                del self.waiting[model]

    def limiter(self, entry: ProviderEntry) -> ProviderLimiter:
        """The provider's limiter; rebuilt when its rateLimit changes."""
        current = self._limiters.get(entry.name)
        # Identity first: a snapshot keeps the same spec objects until something changes.
        if current is None or (
            current[0] is not entry.spec.rate_limit and current[0] != entry.spec.rate_limit
        ):
            current = (entry.spec.rate_limit, self.make_limiter(entry.name, entry.spec.rate_limit))
            self._limiters[entry.name] = current
        return current[1]

    def pick_endpoint(self, entry: ProviderEntry, tried: Sequence[str] = ()) -> str:
        """Least outstanding requests (for vLLM, plus the fresh queue length); endpoints that
        tie take turns, so one request at a time still spreads over every pod. Endpoints this
        request ``tried`` already come last."""
        endpoints = entry.endpoints
        if len(endpoints) == 1:
            return endpoints[0]
        if tried:
            endpoints = tuple(e for e in endpoints if e not in tried) or endpoints
        self.endpoint_turn += 1
        turn, count = self.endpoint_turn, len(endpoints)
        best = min(
            range(count),
            key=lambda i: (
                self.queue_depth.get(endpoints[i], 0.0) + self.endpoint_load.get(endpoints[i], 0),
                (i - turn) % count,
            ),
        )
        return endpoints[best]

    def started(self, name: str, endpoint: str) -> None:
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.endpoint_load[endpoint] = self.endpoint_load.get(endpoint, 0) + 1
        self.last_used[name] = time.monotonic()

    def finished(self, name: str, endpoint: str) -> None:
        self.in_flight[name] = max(0, self.in_flight.get(name, 1) - 1)
        self.endpoint_load[endpoint] = max(0, self.endpoint_load.get(endpoint, 1) - 1)

    def observed(self, name: str, ok: bool, seconds: float) -> None:
        """How an attempt at ``name`` went, for selection's success rate and latency."""
        rate = self.success_rate.get(name, 1.0)
        self.success_rate[name] = rate + EWMA * ((1.0 if ok else 0.0) - rate)
        if ok:
            lat = self.latency.get(name, seconds)
            self.latency[name] = lat + EWMA * (seconds - lat)
