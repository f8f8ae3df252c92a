"""``signalbox-router``: the OpenAI-compatible router, in Kubernetes or manifests mode."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import sys
import time
from pathlib import Path

import aiohttp

from signalbox_router import bounding, manifests, queues, serving
from signalbox_router.forwarding import Forwarder
from signalbox_router.server import RouterApp, Settings
from signalbox_router.state import RouterState

log = logging.getLogger("signalbox_router")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="signalbox-router", description=__doc__)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="read LLMProvider/RoutingPolicy YAML from DIR (no cluster)",
    )
    source.add_argument("-n", "--namespace", help="watch this namespace (Kubernetes mode)")
    p.add_argument("--secrets-dir", type=Path, help="Secrets as files: DIR/<secret>/<key>")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--api-keys-file",
        type=Path,
        help="client API keys, one per line; required unless bound to loopback",
    )
    p.add_argument(
        "--no-client-auth",
        action="store_true",
        help="accept unauthenticated clients on a non-loopback address",
    )
    p.add_argument("--max-body", type=int, default=10 * 1024 * 1024)
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=bounding.Limits.max_head_bytes,
        help="largest request line and headers together, in bytes (beyond: 431)",
    )
    p.add_argument(
        "--max-headers",
        type=int,
        default=bounding.Limits.max_headers,
        help="most request headers (beyond: 431)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=bounding.Limits.head_timeout,
        help="seconds a client has to send a request's headers (beyond: 408, closed)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=bounding.Limits.body_timeout,
        help="seconds a client has to send a request's body (beyond: 408, closed)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="also serve /metrics, without a client key, on this port (default: off)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="bind address of --metrics-port (default: loopback)",
    )
    p.add_argument("--resync", type=float, default=60.0, help="full re-list period (seconds)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def _client_keys(args: argparse.Namespace) -> frozenset[str] | None:
    if args.api_keys_file is not None:
        keys = {line.strip() for line in args.api_keys_file.read_text().splitlines()}
        return frozenset(k for k in keys if k and not k.startswith("#"))
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if loopback or args.no_client_auth:
        return None
    raise SystemExit(
        "signalbox-router: bound to a non-loopback address, so client API keys "
        "are required: pass --api-keys-file FILE (or --no-client-auth)"
    )


def build_app(args: argparse.Namespace) -> RouterApp:
    state = RouterState()
    app = RouterApp(
        state,
        Settings(
            max_body=args.max_body,
            client_keys=_client_keys(args),
            max_snapshot_age=max(120.0, 2 * args.resync),
        ),
    )
    tasks: list[asyncio.Task[None]] = []
    holder: dict[str, aiohttp.ClientSession] = {}

    async def startup() -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        holder["session"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        app.forwarder = Forwarder(holder["session"], state)
        tasks.append(asyncio.create_task(queues.run(state, holder["session"])))
        if args.manifests is not None:
            state.snapshot = manifests.load(args.manifests, args.secrets_dir)
            state.synced_at = time.monotonic()
            tasks.append(asyncio.create_task(_watch_folder(args, state)))
        else:
            from signalbox_router import watching

            tasks.append(asyncio.create_task(watching.run(state, args.namespace, args.resync)))
        _tune_gc()

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
        if "session" in holder:
            await holder["session"].close()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app


def _tune_gc() -> None:
    """What exists after startup (modules, schemas, the first snapshot) lives as long as the
    process: freeze it out of the collector's scans. Request objects die by reference counting,
    so the young generation is collected less often (measured: about 3 % more throughput)."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


async def _watch_folder(args: argparse.Namespace, state: RouterState) -> None:
    """Re-read the folder when a file in it changes; the snapshot (and its caches) is replaced
    only then."""
    seen = manifests.fingerprint(args.manifests)
    while True:
        await asyncio.sleep(2.0)
        now = manifests.fingerprint(args.manifests)
        state.synced_at = time.monotonic()
        if now == seen:
            continue
        seen = now
        try:
            state.snapshot = manifests.load(args.manifests, args.secrets_dir)
            log.info("reloaded manifests from %s", args.manifests)
        except manifests.ManifestError as exc:
            log.error("keeping the previous manifests: %s", exc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = build_app(args)
    except manifests.ManifestError as exc:
        raise SystemExit(f"signalbox-router: {exc}") from exc
    limits = bounding.Limits(
        max_head_bytes=args.max_header_bytes,
        max_headers=args.max_headers,
        head_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
    )
    metrics = None if args.metrics_port is None else (args.metrics_host, args.metrics_port)
    with contextlib.suppress(KeyboardInterrupt):
        serving.run(
            app,
            host=args.host,
            port=args.port,
            limits=limits,
            log_level=args.log_level,
            metrics=metrics,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
