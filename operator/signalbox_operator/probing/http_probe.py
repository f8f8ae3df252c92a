"""Runs one health probe against a provider over HTTP and reports what happened.

A failed probe is data for the circuit, not an exception: every outcome comes back as a
ProbeReport. Messages name the method, the URL without its query and the status code; never
headers, keys or response bodies.

A probe is bounded in time and memory whatever the provider does: one deadline covers the
connection, the headers and the whole body; bodies are read as a stream and given up past
``ProbeLimits.max_body``; only a few probes at once may hold more than ``ProbeLimits.small_body``
(the rest wait their turn within their own deadline), so a crowd of providers sending endless or
huge bodies cannot take the operator past its memory limit. Compressed bodies are inflated within
the same bound. An answer that cannot be read (not JSON, nested past the parser's depth, of the
wrong shape) is the provider's ``InvalidResponse``, never an error of the operator's. Describing
models (Ollama's ``/api/show``) is discovery, not health: it has its own deadline after the
probe's, and a model the provider cannot describe in time is left undescribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import socket
import ssl
import time
import zlib
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from signalbox_api.conditions import Reason
from signalbox_api.primitives import parse_duration
from signalbox_api.provider import HealthCheckMode, LLMProviderSpec
from signalbox_operator.status import discovery
from signalbox_operator.status.provider_status import ProbeReport, Refs
from signalbox_providers import dialects
from signalbox_providers.model_facts import ModelFacts
from signalbox_providers.outcomes import Outcome, classify_status, retry_after_seconds

MAX_BODY = 4 * 1024 * 1024
SMALL_BODY = 64 * 1024
MAX_SHOWN = 4  # models described per probe (Ollama's /api/show), each once
DESCRIBE_SECONDS = 10.0  # for describing them, after the probe's own deadline
# What reading a provider's answer may raise, however it is malformed.
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)
LARGE_BODIES = 8  # probes that may hold more than SMALL_BODY at once


@dataclass
class ProbeLimits:
    """What all probes share: the body cap and the turns for large bodies."""

    max_body: int = MAX_BODY
    small_body: int = SMALL_BODY
    large: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LARGE_BODIES))


class ProbeFailed(Exception):
    """What went wrong with a call to the provider, as the probe reports it (message safe)."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        code: int = 0,
        retry_after: float | None = None,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome, self.message, self.code = outcome, message, code
        self.retry_after, self.reason = retry_after, reason


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is no number
        netloc = host
    return discovery.clip(urlunsplit((parts.scheme, netloc, parts.path, "", "")), 512)


def _transport_failure(exc: httpx.HTTPError, where: str) -> ProbeFailed:
    """Name what went wrong on the way, from the exception's type (never its text)."""
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailed(Outcome.TIMEOUT, f"{where}: timed out")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ProbeFailed(
                Outcome.CONNECT_FAILURE,
                f"{where}: TLS certificate verification failed",
                reason=Reason.TLS_ERROR,
            )
        if isinstance(cause, ssl.SSLError):
            return ProbeFailed(
                Outcome.CONNECT_FAILURE, f"{where}: TLS handshake failed", reason=Reason.TLS_ERROR
            )
        if isinstance(cause, socket.gaierror):
            return ProbeFailed(
                Outcome.CONNECT_FAILURE,
                f"{where}: the host name did not resolve",
                reason=Reason.NAME_NOT_RESOLVED,
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.LocalProtocolError):  # our side: a header h11 will not send
        return ProbeFailed(
            Outcome.BAD_REQUEST,
            f"{where}: the request could not be sent (invalid header value)",
            reason=Reason.INVALID_HEADER,
        )
    if isinstance(exc, httpx.ConnectError):
        return ProbeFailed(Outcome.CONNECT_FAILURE, f"{where}: connection failed")
    if isinstance(exc, httpx.ProtocolError):
        return ProbeFailed(
            Outcome.INVALID_RESPONSE,
            f"{where}: not a valid HTTP response ({type(exc).__name__})",
            reason=Reason.PROTOCOL_ERROR,
        )
    return ProbeFailed(Outcome.CONNECT_FAILURE, f"{where}: {type(exc).__name__}")


def _inflater(encoding: str, where: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ProbeFailed(
        Outcome.INVALID_RESPONSE,
        f"{where}: unsupported content-encoding",
        reason=Reason.PROTOCOL_ERROR,
    )


async def read_body(resp: httpx.Response, limits: ProbeLimits, where: str) -> bytearray:
    """The body, decoded, at most ``limits.max_body`` bytes; a larger one is a failure."""
    inflate = _inflater(resp.headers.get("content-encoding", ""), where)
    body = bytearray()
    holding_large = False
    try:
        async for raw in resp.aiter_raw():
            room = limits.max_body - len(body)
            try:
                chunk = inflate.decompress(raw, room + 1) if inflate is not None else raw
            except zlib.error as exc:
                raise ProbeFailed(
                    Outcome.INVALID_RESPONSE,
                    f"{where}: corrupt compressed body",
                    reason=Reason.PROTOCOL_ERROR,
                ) from exc
            if len(chunk) > room or (inflate is not None and inflate.unconsumed_tail):
                raise ProbeFailed(
                    Outcome.INVALID_RESPONSE,
                    f"{where}: response body over {limits.max_body} bytes",
                    resp.status_code,
                    reason=Reason.RESPONSE_TOO_LARGE,
                )
            if not holding_large and len(body) + len(chunk) > limits.small_body:
                await limits.large.acquire()
                holding_large = True
            body += chunk
        return body
    except BaseException:
        # The traceback keeps this frame, and so the buffer, alive until the cycle collector
        # runs: a crowd of failing probes would hold megabytes each. Free it now.
        body.clear()
        raise
    finally:
        if holding_large:
            limits.large.release()


async def _send(
    client: httpx.AsyncClient, call: dialects.HttpCall, limits: ProbeLimits, *, lists: bool = False
) -> Any:
    """Send one call; return its JSON body (or None) on 2xx, raise ProbeFailed otherwise."""
    where = f"{call.method} {_safe_url(call.url)}"
    headers = {**call.headers, "accept-encoding": "identity"}
    try:
        async with client.stream(call.method, call.url, headers=headers, json=call.json) as resp:
            code = resp.status_code
            if 300 <= code < 400:
                raise ProbeFailed(
                    Outcome.INVALID_RESPONSE,
                    f"{where}: HTTP {code} redirect (probes follow no redirects)",
                    code,
                    reason=Reason.REDIRECTED,
                )
            raw = await read_body(resp, limits, where)
            retry_after = retry_after_seconds(resp.headers.get("retry-after"))
    except httpx.HTTPError as exc:
        raise _transport_failure(exc, where) from None
    except httpx.InvalidURL:
        raise ProbeFailed(Outcome.BAD_REQUEST, f"{where}: invalid URL") from None
    except UnicodeError:  # a header value httpx cannot encode
        raise ProbeFailed(
            Outcome.BAD_REQUEST,
            f"{where}: the request could not be sent (invalid header value)",
            reason=Reason.INVALID_HEADER,
        ) from None
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            body = None
    del raw
    outcome = classify_status(code, body)
    if lists and outcome == Outcome.MODEL_NOT_FOUND:
        outcome = Outcome.INVALID_RESPONSE  # a 404 on a listing means a wrong path, not a model
    if outcome != Outcome.SUCCESS:
        raise ProbeFailed(outcome, f"{where}: HTTP {code}", code, retry_after)
    return body


@dataclass(frozen=True)
class _Listed:
    """What a listing probe found: the models, their listed facts, and those to describe."""

    found: discovery.Discovered
    facts: dict[str, ModelFacts]
    to_describe: list[str]


async def _run(
    client: httpx.AsyncClient,
    spec: LLMProviderSpec,
    refs: Refs,
    limits: ProbeLimits,
    known: Collection[str] = (),
) -> _Listed | None:
    """The health probe itself: what the listing found, or None for the other modes."""
    base = refs.base_url or ""
    dialect = dialects.dialect(spec.type)
    header = spec.auth.header if spec.auth else None
    opts = dialect.options(spec)
    hc = spec.health_check
    if hc.mode == HealthCheckMode.HTTP_GET:
        url = dialect.root(base) + (hc.path or "/")
        await _send(client, dialects.HttpCall("GET", url), limits, lists=True)
        return None
    if hc.mode == HealthCheckMode.CHAT_PROBE:
        model = hc.probe_model or ""
        await _send(client, dialect.chat_probe(base, model, refs.api_key, header, opts), limits)
        return None
    for call in dialect.readiness(base):
        await _send(client, call, limits, lists=True)
    listing = dialect.list_models(base, refs.api_key, header, opts)
    body = await _send(client, listing, limits, lists=True)
    declared = {m.name for m in spec.models}
    try:
        found = discovery.bound(dialect.parse_models(body), declared)
        listed = dialect.listed_facts(body)
    except _UNREADABLE as exc:
        raise ProbeFailed(
            Outcome.INVALID_RESPONSE, f"GET {_safe_url(listing.url)}: not a model list"
        ) from exc
    del body
    facts = {n: f for n, f in listed.items() if found.has(n)}
    wanted = [n for n in [*sorted(declared), *found.names] if found.has(n) and n not in known]
    return _Listed(found, facts, list(dict.fromkeys(wanted))[:MAX_SHOWN])


async def _describe(
    client: httpx.AsyncClient,
    spec: LLMProviderSpec,
    refs: Refs,
    limits: ProbeLimits,
    listed: _Listed,
) -> discovery.Discovered:
    """``listed`` with the facts the provider gives of each model to describe, as far as
    ``DESCRIBE_SECONDS`` allow: a model the provider will not or cannot describe is no fault
    of its health."""
    dialect = dialects.dialect(spec.type)
    header = spec.auth.header if spec.auth else None
    facts = dict(listed.facts)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DESCRIBE_SECONDS):
            for name in listed.to_describe:
                show = dialect.show_model(refs.base_url or "", name, refs.api_key, header)
                if show is None:
                    break
                try:
                    facts[name] = dialect.parse_shown(await _send(client, show, limits))
                except (ProbeFailed, *_UNREADABLE):
                    continue
    return dataclasses.replace(listed.found, facts=facts)


def identity(spec: LLMProviderSpec, refs: Refs, known: Collection[str] = ()) -> Hashable:
    """What a probe of ``spec`` at ``refs`` depends on: two providers of equal identities send
    the same requests and get the same report (``probe_traffic`` shares it). The key is held as
    its digest."""
    key = hashlib.sha256(refs.api_key.encode()).digest() if refs.api_key else None
    return (
        spec.type,
        refs.base_url,
        key,
        spec.auth.header if spec.auth else None,
        spec.health_check.model_dump_json(),
        tuple(sorted(dialects.dialect(spec.type).options(spec).items())),
        frozenset(m.name for m in spec.models),
        spec.discover_models,
        frozenset(known),
    )


def host(refs: Refs) -> str:
    """The host a probe at ``refs`` goes to (its rate is bounded per host)."""
    return urlsplit(refs.base_url or "").netloc


async def probe(
    client: httpx.AsyncClient,
    spec: LLMProviderSpec,
    refs: Refs,
    limits: ProbeLimits | None = None,
    known: Collection[str] = (),
) -> ProbeReport:
    """Probe the provider as its healthCheck says, within its timeout (body included).
    Models in ``known`` were described before: they are not asked about again."""
    timeout = parse_duration(spec.health_check.timeout)
    started = time.perf_counter()
    at = datetime.now(UTC)
    limits = limits or ProbeLimits()
    try:
        async with asyncio.timeout(timeout):
            listed = await _run(client, spec, refs, limits, known)
    except ProbeFailed as failed:
        return ProbeReport(
            outcome=failed.outcome,
            at=at,
            latency_ms=_ms(started),
            code=failed.code,
            message=failed.message,
            retry_after=failed.retry_after,
            reason=failed.reason,
        )
    except TimeoutError:
        return ProbeReport(
            outcome=Outcome.TIMEOUT,
            at=at,
            latency_ms=_ms(started),
            message=f"probe timed out after {spec.health_check.timeout}",
        )
    latency = _ms(started)
    models = None if listed is None else await _describe(client, spec, refs, limits, listed)
    return ProbeReport(outcome=Outcome.SUCCESS, at=at, latency_ms=latency, code=200, models=models)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
