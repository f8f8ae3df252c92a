"""FakeProvider: one aiohttp server on a loopback address that plays one LLM provider.

It serves the provider's real routes and wire format, and takes faults at run time::

    async with FakeProvider("cloud", Flavor.OPENAI, ["gpt-4o-mini"]) as fake:
        fake.set_faults(status=503, times=2)
        ...  # point a client at fake.base_url

Admin routes (never part of a real provider's API): ``GET|PUT /_fake/faults``,
``POST /_fake/reset``, ``GET /_fake/requests``, ``PUT /_fake/vllm``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import pydantic
from aiohttp import web
from opentelemetry import propagate, trace

from signalbox_fake import (
    anthropic_api,
    completions_api,
    errors,
    ollama_api,
    openai_api,
    responses_api,
    wire,
)
from signalbox_fake.state import FakeState, Faults, Flavor, SeenRequest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIX = "/_fake/"


class FakeProvider:
    """A fake LLM provider of one flavor, listening on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        name: str,
        flavor: Flavor | str,
        models: list[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.state = FakeState(name=name, flavor=Flavor(flavor), models=list(models), tracer=tracer)
        if faults is not None:
            self.state.faults = faults
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.2:8001``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where an SDK points: ``/v1`` for OpenAI-style flavors, the root for Anthropic."""
        root = self.state.flavor in (Flavor.ANTHROPIC, Flavor.AZURE)
        return self.url if root else f"{self.url}/v1"

    # -- faults ------------------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Replace the faults with the given fields (others reset to their defaults)."""
        self.state.faults = Faults(**changes)
        self._release_hung()
        return self.state.faults

    def clear_faults(self) -> None:
        self.set_faults()

    @property
    def seen(self) -> list[SeenRequest]:
        return list(self.state.seen)

    def _release_hung(self) -> None:
        event, loop = self.state.unhang, self._loop
        if event is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeProvider:
        self._loop = asyncio.get_running_loop()
        self.state.unhang = asyncio.Event()
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        self._release_hung()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(
        self, *exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[FakeProvider]:
        """Serve from a background thread, for synchronous clients such as the sync SDKs."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, name=f"fake-{self.state.name}", daemon=True)
        thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def build_app(state: FakeState) -> web.Application:
    app = web.Application(middlewares=[_faults_middleware], client_max_size=32 * 1024**2)
    app[wire.STATE] = state
    routes = [
        web.get(ADMIN_PREFIX + "faults", _get_faults),
        web.put(ADMIN_PREFIX + "faults", _put_faults),
        web.post(ADMIN_PREFIX + "reset", _reset),
        web.get(ADMIN_PREFIX + "requests", _requests),
        web.put(ADMIN_PREFIX + "vllm", _put_vllm),
    ]
    flavor = state.flavor
    if flavor == Flavor.ANTHROPIC:
        routes += anthropic_api.routes()
    elif flavor == Flavor.AZURE:
        routes += openai_api.azure_routes() + responses_api.routes("/openai/v1")
    else:
        routes += openai_api.routes("/v1") + completions_api.routes("/v1")
    if flavor == Flavor.OPENAI:
        routes += responses_api.routes("/v1")
    if flavor == Flavor.OLLAMA:
        routes += ollama_api.routes()
    if flavor == Flavor.VLLM:
        routes += [
            web.get("/health", _empty_ok),
            web.get("/metrics", _vllm_metrics),
            web.get("/version", _vllm_version),
        ]
    if flavor == Flavor.LOCALAI:
        routes += [web.get("/readyz", _text_ok), web.get("/healthz", _text_ok)]
    app.add_routes(routes)
    return app


def error_body(state: FakeState, path: str, status: int, message: str) -> dict[str, Any]:
    if path.startswith("/api/"):
        return errors.ollama_body(status, message)
    if state.flavor == Flavor.ANTHROPIC:
        return errors.anthropic_body(status, message)
    if state.flavor == Flavor.VLLM:
        return errors.vllm_body(status, message)
    return errors.openai_body(status, message)


def _authorized(state: FakeState, request: web.Request) -> bool | None:
    """None when no key is required; else whether the request carried the right one."""
    key = state.faults.api_key
    if key is None or not request.path.startswith(("/v1/", "/openai/")):
        return None
    auth = request.headers.get("Authorization", "")
    given = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
    # Anthropic takes x-api-key (its SDK may also send a bearer token); Azure takes api-key.
    extra = "x-api-key" if state.flavor == Flavor.ANTHROPIC else "api-key"
    given = given or request.headers.get(extra, "")
    return hmac.compare_digest(given.encode(), key.encode())


async def _record(state: FakeState, request: web.Request, authorized: bool | None) -> None:
    body: dict[str, Any] | None = None
    if request.can_read_body:
        try:
            parsed = json.loads(await request.read())
            body = parsed if isinstance(parsed, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
    state.seen.append(
        SeenRequest(
            method=request.method,
            path=request.path,
            model=body.get("model") if body else None,
            authorized=authorized,
            header_names=tuple(sorted(h.lower() for h in request.headers)),
            body=body,
            at=time.time(),
            request_id=request.headers.get("X-Request-Id"),
        )
    )


_UNREADABLE = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


@web.middleware
async def _faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[wire.STATE]
    if request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    if state.tracer is None:
        return await _play(state, request, handler)
    # A provider that traces: its span continues the caller's trace (``traceparent``).
    with state.tracer.start_as_current_span(
        f"{request.method} {request.path}",
        context=propagate.extract(request.headers),
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": request.path},
    ) as span:
        response = await _play(state, request, handler)
        span.set_attribute("http.response.status_code", response.status)
        return response


async def _play(state: FakeState, request: web.Request, handler: Handler) -> web.StreamResponse:
    """The provider's answer to ``request``, with the faults set and the request recorded."""
    authorized = _authorized(state, request)
    await _record(state, request, authorized)
    faults = state.faults
    if faults.latency:
        await asyncio.sleep(faults.latency)
    if faults.hang and state.unhang is not None:
        state.unhang.clear()
        await state.unhang.wait()
    if authorized is False:
        message = (
            "Incorrect API key provided."
            if state.flavor != Flavor.ANTHROPIC
            else ("invalid x-api-key")
        )
        return errors.respond(error_body(state, request.path, 401, message), 401)
    status = state.take_status_fault()
    if status is not None:
        retry_after = faults.retry_after if status == 429 else None
        message = f"Injected failure: HTTP {status}"
        return errors.respond(error_body(state, request.path, status, message), status, retry_after)
    if faults.malformed:
        return web.Response(text='{"id": "broken", "choices": [', content_type="application/json")
    try:
        response = await handler(request)
    except wire.BadRequest as exc:
        return errors.respond(error_body(state, request.path, exc.status, str(exc)), exc.status)
    except _UNREADABLE as exc:  # a body shaped as no check here foresaw: a provider says 400
        message = f"The request could not be read ({type(exc).__name__})."
        return errors.respond(error_body(state, request.path, 400, message), 400)
    state.served += 1
    return response


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[wire.STATE].faults.model_dump())


async def _put_faults(request: web.Request) -> web.Response:
    state = request.app[wire.STATE]
    try:
        state.faults = Faults.model_validate(await request.json())
    except (pydantic.ValidationError, json.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if state.unhang is not None:
        state.unhang.set()
    return web.json_response(state.faults.model_dump())


async def _reset(request: web.Request) -> web.Response:
    state = request.app[wire.STATE]
    state.faults = Faults()
    state.seen.clear()
    if state.unhang is not None:
        state.unhang.set()
    return web.json_response({"reset": True})


async def _requests(request: web.Request) -> web.Response:
    seen = [dataclasses.asdict(s) for s in request.app[wire.STATE].seen]
    return web.json_response({"requests": seen})


async def _put_vllm(request: web.Request) -> web.Response:
    state = request.app[wire.STATE]
    values = await request.json()
    state.vllm = dataclasses.replace(state.vllm, **values)
    return web.json_response(dataclasses.asdict(state.vllm))


async def _empty_ok(request: web.Request) -> web.Response:
    del request
    return web.Response(status=200)


async def _text_ok(request: web.Request) -> web.Response:
    del request
    return web.Response(text="OK")


async def _vllm_version(request: web.Request) -> web.Response:
    del request
    return web.json_response({"version": "0.11.0"})


async def _vllm_metrics(request: web.Request) -> web.Response:
    state = request.app[wire.STATE]
    lines = []
    for metric, kind, value, help_text in (
        (
            "vllm:num_requests_running",
            "gauge",
            state.vllm.running,
            "Number of requests in model execution batches.",
        ),
        (
            "vllm:num_requests_waiting",
            "gauge",
            state.vllm.waiting,
            "Number of requests waiting to be processed.",
        ),
        (
            "vllm:kv_cache_usage_perc",
            "gauge",
            state.vllm.kv_cache_usage,
            "KV-cache usage. 1 means 100 percent usage.",
        ),
    ):
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for model in state.models:
            lines.append(f'{metric}{{engine="0",model_name="{model}"}} {value}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
