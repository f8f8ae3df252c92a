"""Serving the router: uvicorn with the bounded protocol, and ``/metrics`` on a port of its own.

With client keys on, the public port's ``/metrics`` takes a key like ``/v1/``; Prometheus (a
ServiceMonitor in Kubernetes) scrapes ``--metrics-port`` instead, a second listener in the same
event loop that serves nothing but ``/metrics`` (with a bearer token of its own when it is
bound off loopback while client keys are on).
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from signalbox_router.edge.bounding import BoundedProtocol, ConnectionLimits, protocol_for
from signalbox_router.edge.exposition import MetricsApp
from signalbox_router.edge.router_app import RouterApp


def run(
    app: RouterApp,
    *,
    host: str,
    port: int,
    limits: ConnectionLimits,
    log_level: str,
    metrics: tuple[str, int] | None = None,
) -> None:
    """Serve ``app`` until a signal; with ``metrics`` (host, port), ``/metrics`` there too."""
    protocol = protocol_for(limits)
    if metrics is not None:
        _serve_metrics_beside(app, protocol, *metrics)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=protocol,
        ws="none",
        proxy_headers=False,
        server_header=False,
        log_level=log_level,
        log_config=None,  # its lines go to the router's own handler (``logs``)
        access_log=False,  # the router writes its own (``access_log``)
        lifespan="on",
    )


def _serve_metrics_beside(
    app: RouterApp, protocol: type[BoundedProtocol], host: str, port: int
) -> None:
    """A second listener in the same event loop, opened and closed with ``app``."""
    config = uvicorn.Config(
        MetricsApp(app.state, app.settings.metrics_tokens),
        host=host,
        port=port,
        http=protocol,
        ws="none",
        lifespan="off",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )
    config.load()
    state = ServerState()
    servers: list[asyncio.Server] = []

    def connection() -> asyncio.Protocol:
        return protocol(config=config, server_state=state, app_state={})

    async def start() -> None:
        loop = asyncio.get_running_loop()
        servers.append(await loop.create_server(connection, host, port))

    async def stop() -> None:
        for server in servers:
            server.close()
        for conn in list(state.connections):
            conn.shutdown()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
