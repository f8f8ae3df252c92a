"""Runs one health probe against a provider over HTTP and reports what happened.

A failed probe is data for the circuit, not an exception: every outcome comes back as a
ProbeReport. Messages name the method, the URL without its query and the status code; never
headers, keys or response bodies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from signalbox_api.primitives import parse_duration
from signalbox_api.provider import HealthCheckMode, LLMProviderSpec
from signalbox_operator.provider_status import ProbeReport, Refs
from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome, classify_status, retry_after_seconds


class _Failed(Exception):
    def __init__(
        self, outcome: Outcome, message: str, code: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.outcome, self.message, self.code, self.retry_after = (
            outcome,
            message,
            code,
            retry_after,
        )


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return (
        urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
        if not parts.port
        else urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", parts.path, "", ""))
    )


async def _send(client: httpx.AsyncClient, call: dialects.HttpCall, *, lists: bool = False) -> Any:
    """Send one call; return its JSON body (or None) on 2xx, raise _Failed otherwise."""
    where = f"{call.method} {_safe_url(call.url)}"
    try:
        resp = await client.request(
            call.method, call.url, headers=dict(call.headers), json=call.json
        )
    except httpx.TimeoutException as exc:
        raise _Failed(Outcome.TIMEOUT, f"{where}: timed out") from exc
    except httpx.ConnectError as exc:
        raise _Failed(Outcome.CONNECT_FAILURE, f"{where}: connection failed") from exc
    except httpx.HTTPError as exc:
        raise _Failed(Outcome.CONNECT_FAILURE, f"{where}: {type(exc).__name__}") from exc
    body: Any = None
    if resp.content:
        try:
            body = resp.json()
        except ValueError:
            body = None
    outcome = classify_status(resp.status_code, body)
    if lists and outcome == Outcome.MODEL_NOT_FOUND:
        outcome = Outcome.INVALID_RESPONSE  # a 404 on a listing means a wrong path, not a model
    if outcome != Outcome.SUCCESS:
        raise _Failed(
            outcome,
            f"{where}: HTTP {resp.status_code}",
            resp.status_code,
            retry_after_seconds(resp.headers.get("retry-after")),
        )
    return body


async def _run(
    client: httpx.AsyncClient, spec: LLMProviderSpec, refs: Refs
) -> tuple[str, ...] | None:
    base = refs.base_url or ""
    dialect = dialects.dialect(spec.type)
    header = spec.auth.header if spec.auth else None
    opts: Mapping[str, str] = {"api_version": spec.azure.api_version} if spec.azure else {}
    hc = spec.health_check
    if hc.mode == HealthCheckMode.HTTP_GET:
        url = dialects.root_of(base) + (hc.path or "/")
        await _send(client, dialects.HttpCall("GET", url), lists=True)
        return None
    if hc.mode == HealthCheckMode.CHAT_PROBE:
        model = hc.probe_model or ""
        await _send(client, dialect.chat_probe(base, model, refs.api_key, header, opts))
        return None
    for call in dialect.readiness(base):
        await _send(client, call, lists=True)
    listing = dialect.list_models(base, refs.api_key, header, opts)
    body = await _send(client, listing, lists=True)
    try:
        return tuple(dialect.parse_models(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Failed(
            Outcome.INVALID_RESPONSE, f"GET {_safe_url(listing.url)}: not a model list"
        ) from exc


async def probe(client: httpx.AsyncClient, spec: LLMProviderSpec, refs: Refs) -> ProbeReport:
    """Probe the provider as its healthCheck says, within its timeout."""
    timeout = parse_duration(spec.health_check.timeout)
    started = time.perf_counter()
    at = datetime.now(UTC)
    try:
        async with asyncio.timeout(timeout):
            models = await _run(client, spec, refs)
    except _Failed as failed:
        return ProbeReport(
            outcome=failed.outcome,
            at=at,
            latency_ms=_ms(started),
            code=failed.code,
            message=failed.message,
            retry_after=failed.retry_after,
        )
    except TimeoutError:
        return ProbeReport(
            outcome=Outcome.TIMEOUT,
            at=at,
            latency_ms=_ms(started),
            message=f"probe timed out after {spec.health_check.timeout}",
        )
    return ProbeReport(
        outcome=Outcome.SUCCESS, at=at, latency_ms=_ms(started), code=200, models=models
    )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
