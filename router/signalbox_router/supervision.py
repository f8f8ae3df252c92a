"""Background tasks that never die quietly: a crash is logged, counted, shown and restarted.

The router's background work (the Kubernetes watch, the manifests folder watch, vLLM queue
scrapes) runs in asyncio tasks; an exception escaping one used to end it for good, silently,
while the router served an ageing snapshot. :class:`Supervisor` runs each task in a loop: when it
raises (or returns), it logs one line (the exception's type and where it was raised, never its
message, which may quote a value), counts ``signalbox_router_task_restarts_total{task=...}``,
marks the task failing in ``RouterState.failing`` (``/readyz`` answers 503 with the reason at
once) and starts it again after a back-off that doubles up to ``cap``.

A task that reports its own health takes a :class:`Health` and calls ``ok()`` once it works
again (and ``fail(reason)`` when it cannot do its job, e.g. the folder is gone); for the others
the supervisor clears the mark when it restarts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

import prometheus_client as prom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """A task's own word on whether it is doing its job; ``/readyz`` reads ``failing``."""

    name: str
    failing: MutableMapping[str, str]

    def ok(self) -> None:
        self.failing.pop(self.name, None)

    def fail(self, reason: str) -> None:
        self.failing[self.name] = reason


Factory = Callable[[Health], Awaitable[None]]


def describe(exc: BaseException) -> str:
    """The exception's type and the place it was raised: enough to find the bug, no values."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


class Supervisor:
    """Starts and restarts the router's background tasks; one per router process."""

    def __init__(
        self,
        registry: prom.CollectorRegistry,
        failing: MutableMapping[str, str],
        *,
        base: float = 1.0,
        cap: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failing = failing
        self.restarts = prom.Counter(
            "signalbox_router_task_restarts_total",
            "Background tasks restarted after they crashed or stopped, by task.",
            ["task"],
            registry=registry,
        )
        self._base, self._cap, self._sleep, self._clock = base, cap, sleep, clock

    def start(
        self, name: str, factory: Factory, *, reports_health: bool = True
    ) -> asyncio.Task[None]:
        """Run ``factory(health)`` as task ``name`` for as long as the router runs."""
        self.restarts.labels(task=name)  # the series exists at 0 before the first restart
        return asyncio.create_task(self.run(name, factory, reports_health), name=name)

    async def run(self, name: str, factory: Factory, reports_health: bool) -> None:
        health = Health(name, self.failing)
        delay = self._base
        while True:
            started = self._clock()
            try:
                await factory(health)
                reason = "stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"crashed ({describe(exc)})"
            if self._clock() - started > 2 * self._cap:
                delay = self._base  # it ran well for a while: this is a fresh failure
            health.fail(f"{name} {reason}; restarting")
            self.restarts.labels(task=name).inc()
            log.error("background task %s %s; restarting in %.1fs", name, reason, delay)
            await self._sleep(delay)
            delay = min(delay * 2, self._cap)
            if not reports_health:
                health.ok()
