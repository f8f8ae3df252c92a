"""One term of leadership after another: campaign for the Lease, work while it is held, stop
all work the moment it is lost (or kopf fails), then campaign again.

Everything a term builds (the Kubernetes writer, the policies, the HTTP client, kopf's memo) is
new: no memory of an earlier term is trusted. A term ends with the fence closed before anything
else, so no write of a lost term lands after a new leader's. ``health.Status`` follows each
phase for the process's ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
import kubernetes

from signalbox_api import tracing
from signalbox_operator import handlers, health
from signalbox_operator.kube import Kube
from signalbox_operator.leadership.fencing import Fence
from signalbox_operator.leadership.leader import Elector, LostLeadership
from signalbox_operator.leadership.shard_elector import ShardElector
from signalbox_operator.metrics import Metrics
from signalbox_operator.policies import Policies
from signalbox_operator.probing import http_probe
from signalbox_operator.probing.probe_traffic import ProbeTraffic
from signalbox_operator.probing.prober import Runtime
from signalbox_operator.probing.refs import Lookups
from signalbox_operator.probing.secret_values import SecretValues

log = logging.getLogger("signalbox_operator")
STOP_SECONDS = 10.0  # how long kopf may take to stop before it is cancelled


async def campaign(
    args: argparse.Namespace,
    api: kubernetes.client.ApiClient,
    metrics: Metrics,
    *,
    elector: Elector,
    status: health.Status,
    stop: asyncio.Event,
) -> None:
    try:
        while not stop.is_set():
            on_signals(stop)  # kopf takes the signals over while it runs
            status.enter(health.Phase.STANDBY)
            log.info("waiting to lead (lease %s) as %s", elector.where, args.identity)
            if not await _first(elector.acquire(), stop):
                break
            again = await lead(
                args, api, metrics, fence=elector.fence, elector=elector, status=status, stop=stop
            )
            if not again:
                break
            await elector.release()  # a lost lease is not ours anyway; kopf's failure frees it
            log.warning("stopped all work; campaigning again for the lease %s", elector.where)
    finally:
        status.enter(health.Phase.STOPPING)
        await elector.release()


def on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def _first(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` until it ends (True) or ``stop`` is set first (False)."""
    working = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (working, stopping):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await working
    return working.done() and not working.cancelled() and not stop.is_set()


async def lead(
    args: argparse.Namespace,
    api: kubernetes.client.ApiClient,
    metrics: Metrics,
    *,
    fence: Fence,
    elector: Elector | None,
    status: health.Status,
    stop: asyncio.Event,
) -> bool:
    """Work while the fence is open. True when the work ended for a reason that calls for a
    new campaign (the lease was lost, or kopf failed); False on SIGTERM or SIGINT."""

    # Everything of this term is new: no memory of an earlier term is trusted.
    kube = Kube(api, metrics, args.identity, fence)
    state = _state(args, kube, metrics)
    term_stop = asyncio.Event()
    # The lease task must exist before kopf starts: kopf cancels, when it stops, every task
    # created while it ran.
    holding = asyncio.create_task(elector.hold_apart()) if elector else None
    stopping = asyncio.create_task(stop.wait())
    operator = asyncio.create_task(_kopf(args, state, term_stop))
    status.working = lambda: not operator.done()
    status.enter(health.Phase.LEADING, fence)
    tasks = {t for t in (operator, holding, stopping) if t is not None}
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    fence.close()
    status.enter(health.Phase.STOPPING)
    again = False
    if holding is not None and holding in done:
        log.error("%s; stopping all work", _describe(holding))
        again = True
    elif operator in done and not stop.is_set() and (failure := _kopf_failure(operator, stop)):
        log.error("the operator failed: %s; stopping all work", failure)
        again = True
    term_stop.set()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(operator, STOP_SECONDS)
    for task in (holding, stopping):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    with contextlib.suppress(Exception):
        await state.runtime.http.aclose()
    kube.close()
    return again and not stop.is_set()


async def serve_shards(
    args: argparse.Namespace,
    api: kubernetes.client.ApiClient,
    metrics: Metrics,
    *,
    elector: ShardElector,
    status: health.Status,
    stop: asyncio.Event,
) -> int:
    """Work as one replica of several, on the shards this one holds (``shard_elector``).

    kopf watches everything for the life of the process (a shard changing hands costs no
    re-list); the work of a shard starts when its Lease is won and stops the moment it is lost,
    its fence closed first. The process ends on SIGTERM or SIGINT, giving its shards up so the
    others take them at once, or when kopf fails (1: let the Deployment start it anew)."""
    on_signals(stop)
    kube = Kube(api, metrics, args.identity, Fence())  # writes only through a shard's fence
    state = _state(args, kube, metrics)
    state.sharding = handlers.Sharding(elector.count, elector.fence)
    state.policies.writer = state.writer_for
    loop = asyncio.get_running_loop()
    stopping_work = False

    def shards_changed(gained: set[int], lost: set[int]) -> None:
        if stopping_work:  # kopf has stopped: no work starts, shards won meanwhile are given up
            state.shards_changed(set(), lost)
            return
        state.shards_changed(gained, lost)
        status.enter(health.Phase.LEADING if elector.held else health.Phase.STANDBY, elector)

    def changed(gained: set[int], lost: set[int]) -> None:  # on the elector's thread
        loop.call_soon_threadsafe(shards_changed, gained, lost)

    status.enter(health.Phase.STANDBY, elector)
    log.info(
        "campaigning for %d shard leases (%s) as %s", elector.count, elector.where, args.identity
    )
    electing_stop = threading.Event()
    electing = asyncio.create_task(asyncio.to_thread(elector.run, electing_stop, changed))
    stopping = asyncio.create_task(stop.wait())
    term_stop = asyncio.Event()
    operator = asyncio.create_task(_kopf(args, state, term_stop))
    status.working = lambda: not operator.done()
    await asyncio.wait({operator, electing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    failure = _kopf_failure(operator, stop) if operator.done() and not stop.is_set() else None
    if failure:
        log.error("the operator failed: %s; giving every shard up", failure)
    stopping_work = True
    status.enter(health.Phase.STOPPING)
    electing_stop.set()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(electing, elector.timing.retry_period * (elector.count + 2))
    term_stop.set()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(operator, STOP_SECONDS)
    stopping.cancel()
    with contextlib.suppress(Exception):
        await state.runtime.http.aclose()
    kube.close()
    return 1 if failure else 0


def _state(args: argparse.Namespace, kube: Kube, metrics: Metrics) -> handlers.OperatorState:
    """What a term's work shares: the policies, the probe client and pacing, the Secrets."""

    def clock() -> datetime:
        return datetime.now(UTC)

    policies = Policies(kube, clock, metrics)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(None),  # each probe has its own deadline, body included
        follow_redirects=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
    )
    unresolved = Lookups(secret=lambda _k: None, service=lambda _k: None, endpoints=lambda _k: [])
    runtime = Runtime(
        kube=kube,
        http=http,
        metrics=metrics,
        lookups=unresolved,
        provider_changed=policies.touch,
        clock=clock,
        limits=http_probe.ProbeLimits(max_body=args.probe_max_body),
        secrets=SecretValues(kube.read_secret),
        tracer=tracing.installed_tracer("signalbox_operator"),
        traffic=ProbeTraffic(
            per_host=args.probe_rate_per_host,
            in_flight=args.max_probes_in_flight,
            metrics=metrics,
        ),
    )
    return handlers.OperatorState(runtime=runtime, policies=policies)


def _kopf(
    args: argparse.Namespace, state: handlers.OperatorState, stop_flag: asyncio.Event
) -> Coroutine[Any, Any, None]:
    memo = kopf.Memo()
    memo[handlers.STATE_KEY] = state
    return kopf.operator(
        clusterwide=args.all_namespaces,
        namespaces=args.namespaces or (),
        standalone=True,
        memo=memo,
        stop_flag=stop_flag,
    )


def _kopf_failure(operator: asyncio.Task[None], stop: asyncio.Event) -> str | None:
    """Why kopf's task, ended on its own, failed; None when it stopped on SIGTERM or SIGINT,
    the only way kopf stops by itself (then so does this process: ``stop`` is set)."""
    exc = None if operator.cancelled() else operator.exception()
    if exc is None:
        stop.set()
        return None
    return type(exc).__name__


def _describe(task: asyncio.Task[None] | None) -> str:
    if task is None or task.cancelled():
        return "the lease task was cancelled"
    exc = task.exception()
    return str(exc) if isinstance(exc, LostLeadership) else f"the lease task failed: {exc!r}"
