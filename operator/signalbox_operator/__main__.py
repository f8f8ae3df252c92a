"""``signalbox-operator``: run the operator for one namespace, several, or all of them.

With leader election (the default) the process campaigns for the Lease, works while it holds
it, and when it loses it (a renewal missed its deadline: a paused process, an API outage)
stops all work at once and campaigns again; it exits only on SIGTERM or SIGINT. With
``--shards N`` the providers and policies are split into N shards, a Lease each, and the
replicas share them out (``leadership.shard_elector``): each works on the shards it holds. Its
own ``/healthz`` and ``/readyz`` (``health``) answer for the whole life of the process, standby
or leader.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import kopf
import kubernetes
import prometheus_client as prom

from signalbox_api import log_format, tracing
from signalbox_operator import health, terms
from signalbox_operator.leadership.fencing import Fence, always_open
from signalbox_operator.leadership.leader import Elector, Timing
from signalbox_operator.leadership.shard_elector import LeaseRecords, ShardElector
from signalbox_operator.metrics import Metrics
from signalbox_operator.probing import http_probe, probe_traffic

log = logging.getLogger("signalbox_operator")
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
        "--shards",
        type=int,
        default=1,
        help="split providers and policies into this many shards, a Lease each, spread over "
        "the replicas (default 1: one leader does all)",
    )
    p.add_argument(
        "--probe-max-body",
        type=int,
        default=http_probe.MAX_BODY,
        help=f"largest probe response body in bytes (default {http_probe.MAX_BODY})",
    )
    p.add_argument(
        "--probe-rate-per-host",
        type=float,
        default=probe_traffic.PER_HOST_RATE,
        help="probes a second to one host, identical ones shared "
        f"(default {probe_traffic.PER_HOST_RATE:g})",
    )
    p.add_argument(
        "--max-probes-in-flight",
        type=int,
        default=probe_traffic.MAX_IN_FLIGHT,
        help=f"probes out at once (default {probe_traffic.MAX_IN_FLIGHT})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug lines, kopf's too")
    p.add_argument("--log-level", choices=log_format.LEVELS, default="info")
    p.add_argument(
        "--log-format",
        choices=log_format.FORMATS,
        default="text",
        help="text, or one JSON object a line, kopf's lines too (default: text)",
    )
    args = p.parse_args(argv)
    try:
        args.timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        p.error(str(exc))
    if args.shards < 1 or (args.shards > 1 and not args.leader_election):
        p.error("--shards must be at least 1, and more than 1 needs leader election")
    if args.probe_max_body < 1024:
        p.error("--probe-max-body must be at least 1024")
    if args.probe_rate_per_host <= 0 or args.max_probes_in_flight < 1:
        p.error("--probe-rate-per-host and --max-probes-in-flight must be positive")
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
    elector: Elector | ShardElector | None = None
    lease = {
        "namespace": args.lease_namespace,
        "name": args.lease_name,
        "identity": args.identity,
        "timing": args.timing,
    }
    if args.shards > 1:
        elector = ShardElector(api, count=args.shards, **lease)
    elif args.leader_election:
        elector = Elector(api, fence=Fence(), **lease)
        elector.yield_to = LeaseRecords(
            elector.api, args.lease_namespace, args.lease_name, args.timing
        )
    status = health.Status(elector)
    server = None
    if args.health_port:
        server = health.Server(status, _health_limits(args), args.health_address, args.health_port)
        await server.start()
    try:
        if isinstance(elector, ShardElector):
            return await terms.serve_shards(
                args, api, metrics, elector=elector, status=status, stop=stop
            )
        if elector is None:
            terms.on_signals(stop)
            await terms.lead(
                args, api, metrics, fence=always_open(), elector=None, status=status, stop=stop
            )
        else:
            await terms.campaign(args, api, metrics, elector=elector, status=status, stop=stop)
    finally:
        if server is not None:
            await server.stop()
    return 0


def _health_limits(args: argparse.Namespace) -> health.HealthLimits:
    timing: Timing = args.timing
    # A lease attempt ends at least every 2.5 retry periods; stopping a term takes at most
    # terms.STOP_SECONDS plus the lease's release.
    return health.HealthLimits(
        stalled_after=terms.STOP_SECONDS + 4 * timing.retry_period, stale_after=timing.duration
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kopf.configure(verbose=args.verbose)  # kopf's own loggers; their lines take ours
    level = "debug" if args.verbose else args.log_level
    log_format.install(level, args.log_format, traced=tracing.enabled())
    for name in HEADER_LOGGERS:  # never at DEBUG: their debug lines carry request headers
        logging.getLogger(name).setLevel(logging.WARNING)
    if not args.verbose:  # one line per watch event is noise at any scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        traced = tracing.install("signalbox-operator")
    except tracing.TracingConfigError as exc:
        print(f"signalbox-operator: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    finally:
        if traced is not None:
            traced.shutdown()  # the last spans out


if __name__ == "__main__":
    sys.exit(main())
