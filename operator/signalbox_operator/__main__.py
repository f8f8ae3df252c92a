"""``signalbox-operator``: run the operator for one namespace, several, or all of them.

With leader election (the default) the process campaigns for the Lease, works while it holds
it, and when it loses it (a renewal missed its deadline: a paused process, an API outage)
stops all work at once and campaigns again; it exits only on SIGTERM or SIGINT. Its own
``/healthz`` and ``/readyz`` (``health``) answer for the whole life of the process, standby or
leader.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
import kubernetes
import prometheus_client as prom

from signalbox_operator import handlers, health, probing
from signalbox_operator.fencing import Fence, always_open
from signalbox_operator.kube import Kube
from signalbox_operator.leader import Elector, LostLeadership, Timing
from signalbox_operator.metrics import Metrics
from signalbox_operator.policies import Policies
from signalbox_operator.prober import Runtime
from signalbox_operator.refs import Lookups

log = logging.getLogger("signalbox_operator")
STOP_SECONDS = 10.0  # how long kopf may take to stop before it is cancelled
# Loggers that print request or response headers (which carry keys) at DEBUG.
HEADER_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3", "kubernetes.client.rest")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="signalbox-operator", description=__doc__)
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        help="watch this namespace (repeat for several; globs allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all")
    p.add_argument("--metrics-address", default="127.0.0.1")
    p.add_argument("--metrics-port", type=int, default=9090, help="0 turns metrics off")
    p.add_argument("--health-address", default="127.0.0.1")
    p.add_argument(
        "--health-port", type=int, default=0, help="/healthz and /readyz on this port; 0: off"
    )
    p.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    p.add_argument("--lease-name", default="signalbox-operator")
    p.add_argument("--identity", default=f"{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--lease-duration", type=float, default=15.0, help="seconds (default 15)")
    p.add_argument(
        "--renew-deadline",
        type=float,
        default=10.0,
        help="seconds the leader keeps working without a successful renewal (default 10)",
    )
    p.add_argument("--retry-period", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument(
        "--probe-max-body",
        type=int,
        default=probing.MAX_BODY,
        help=f"largest probe response body in bytes (default {probing.MAX_BODY})",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        args.timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        p.error(str(exc))
    if args.probe_max_body < 1024:
        p.error("--probe-max-body must be at least 1024")
    return args


def _load_kube_config() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    config = kubernetes.client.Configuration.get_default_copy()
    config.connection_pool_maxsize = 32  # as many as the threads that write status
    return kubernetes.client.ApiClient(config)


async def run(args: argparse.Namespace) -> int:
    api = _load_kube_config()
    api.user_agent = f"signalbox-operator/{args.identity}"
    # Status writes run in threads; allow enough of them for a burst after startup.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16, "kube"))
    metrics = Metrics()
    if args.metrics_port:
        prom.start_http_server(args.metrics_port, args.metrics_address, registry=metrics.registry)
    stop = asyncio.Event()
    elector = None
    if args.leader_election:
        elector = Elector(
            api,
            namespace=args.lease_namespace,
            name=args.lease_name,
            identity=args.identity,
            timing=args.timing,
            fence=Fence(),
        )
    status = health.Status(elector)
    server = None
    if args.health_port:
        server = health.Server(status, _health_limits(args), args.health_address, args.health_port)
        await server.start()
    try:
        if elector is None:
            _on_signals(stop)
            await _lead(
                args, api, metrics, fence=always_open(), elector=None, status=status, stop=stop
            )
        else:
            await _campaign(args, api, metrics, elector=elector, status=status, stop=stop)
    finally:
        if server is not None:
            await server.stop()
    return 0


def _health_limits(args: argparse.Namespace) -> health.Limits:
    timing: Timing = args.timing
    # A lease attempt ends at least every 2.5 retry periods; stopping a term takes at most
    # STOP_SECONDS plus the lease's release.
    return health.Limits(
        stalled_after=STOP_SECONDS + 4 * timing.retry_period, stale_after=timing.duration
    )


async def _campaign(
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
            _on_signals(stop)  # kopf takes the signals over while it runs
            status.enter(health.Phase.STANDBY)
            log.info("waiting to lead (lease %s) as %s", elector.where, args.identity)
            if not await _first(elector.acquire(), stop):
                break
            again = await _lead(
                args, api, metrics, fence=elector.fence, elector=elector, status=status, stop=stop
            )
            if not again:
                break
            await elector.release()  # a lost lease is not ours anyway; kopf's failure frees it
            log.warning("stopped all work; campaigning again for the lease %s", elector.where)
    finally:
        status.enter(health.Phase.STOPPING)
        await elector.release()


def _on_signals(stop: asyncio.Event) -> None:
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


async def _lead(
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

    def clock() -> datetime:
        return datetime.now(UTC)

    # Everything of this term is new: no memory of an earlier term is trusted.
    kube = Kube(api, metrics, args.identity, fence)
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
        limits=probing.Limits(max_body=args.probe_max_body),
    )
    memo = kopf.Memo()
    memo[handlers.STATE_KEY] = handlers.OperatorState(runtime=runtime, policies=policies)
    term_stop = asyncio.Event()
    # The lease task must exist before kopf starts: kopf cancels, when it stops, every task
    # created while it ran.
    holding = asyncio.create_task(elector.hold()) if elector else None
    stopping = asyncio.create_task(stop.wait())
    operator = asyncio.create_task(
        kopf.operator(
            clusterwide=args.all_namespaces,
            namespaces=args.namespaces or (),
            standalone=True,
            memo=memo,
            stop_flag=term_stop,
        )
    )
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
    elif operator in done and not stop.is_set():
        exc = None if operator.cancelled() else operator.exception()
        if exc is None:  # kopf stops by itself only on SIGTERM or SIGINT: so does this process
            stop.set()
        else:
            log.error("the operator failed: %s; stopping all work", type(exc).__name__)
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
        await http.aclose()
    return again and not stop.is_set()


def _describe(task: asyncio.Task[None] | None) -> str:
    if task is None or task.cancelled():
        return "the lease task was cancelled"
    exc = task.exception()
    return str(exc) if isinstance(exc, LostLeadership) else f"the lease task failed: {exc!r}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kopf.configure(verbose=args.verbose)
    logging.getLogger("signalbox_operator").setLevel(logging.INFO)
    for name in HEADER_LOGGERS:  # never at DEBUG: their debug lines carry request headers
        logging.getLogger(name).setLevel(logging.WARNING)
    if not args.verbose:  # one line per watch event is noise at any scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
