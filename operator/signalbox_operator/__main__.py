"""``signalbox-operator``: run the operator for one namespace, several, or all of them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import kopf
import kubernetes
import prometheus_client as prom

from signalbox_operator import handlers
from signalbox_operator.kube import Kube
from signalbox_operator.leader import Elector, LostLeadership
from signalbox_operator.metrics import Metrics
from signalbox_operator.policies import Policies
from signalbox_operator.prober import Runtime
from signalbox_operator.refs import Lookups

log = logging.getLogger("signalbox_operator")


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
    p.add_argument("--health-port", type=int, default=0, help="kopf liveness endpoint; 0: off")
    p.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    p.add_argument("--lease-name", default="signalbox-operator")
    p.add_argument("--identity", default=f"{socket.gethostname()}-{os.getpid()}")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


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
    # Status writes run in threads; allow enough of them for a burst after startup.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16, "kube"))
    metrics = Metrics()
    if args.metrics_port:
        prom.start_http_server(args.metrics_port, args.metrics_address, registry=metrics.registry)
    elector = Elector(
        api, namespace=args.lease_namespace, name=args.lease_name, identity=args.identity
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if args.leader_election:
        log.info(
            "waiting to lead (lease %s/%s) as %s",
            args.lease_namespace,
            args.lease_name,
            args.identity,
        )
        waiting = asyncio.create_task(elector.acquire())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            waiting.cancel()
            return 0
        stopping.cancel()
    try:
        return await _lead(args, api, metrics, elector, stop)
    finally:
        if args.leader_election:
            await elector.release()


async def _lead(
    args: argparse.Namespace,
    api: kubernetes.client.ApiClient,
    metrics: Metrics,
    elector: Elector,
    stop: asyncio.Event,
) -> int:
    def clock() -> datetime:
        return datetime.now(UTC)

    kube = Kube(api, metrics, args.identity)
    policies = Policies(kube, clock, metrics)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(None),  # each probe has its own deadline
        follow_redirects=False,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )
    unresolved = Lookups(secret=lambda _k: None, service=lambda _k: None, endpoints=lambda _k: [])
    runtime = Runtime(
        kube=kube,
        http=http,
        metrics=metrics,
        lookups=unresolved,
        provider_changed=policies.touch,
        clock=clock,
    )
    memo = kopf.Memo()
    memo[handlers.STATE_KEY] = handlers.OperatorState(runtime=runtime, policies=policies)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    operator = asyncio.create_task(
        kopf.operator(
            clusterwide=args.all_namespaces,
            namespaces=args.namespaces or (),
            standalone=True,
            memo=memo,
            stop_flag=stop,
            liveness_endpoint=liveness,
        )
    )
    tasks: set[asyncio.Task[None]] = {operator}
    if args.leader_election:
        tasks.add(asyncio.create_task(elector.hold()))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in done:
        exc = task.exception()
        if isinstance(exc, LostLeadership):
            log.error("%s; stopping", exc)
            code = 1
        elif exc is not None:
            log.error("stopping: %s", exc)
            code = 1
    stop.set()
    for task in tasks - done:
        if task is operator:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        else:
            task.cancel()
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kopf.configure(verbose=args.verbose)
    logging.getLogger("signalbox_operator").setLevel(logging.INFO)
    if not args.verbose:  # one line per probe or watch event is noise at any scale
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
