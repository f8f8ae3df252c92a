"""Sends a request to the providers of its route, in order, until one answers.

Failover rules: ConnectFailure, Timeout, ServerError and RateLimited (as the policy's
``retryOn`` allows) move on to the next provider, with back-off, up to ``maxAttempts``;
400, 404, 413 and 422 from upstream are answered at once; 401/403 count against that provider
and move on; a malformed answer counts as a server error. A 429 cools the provider for its
Retry-After (5 s when absent). When every provider is at its rate limit the request waits in
line, one line per model (bounded; critical before standard; sheddable is refused at once),
and then gets 429 with Retry-After. Nothing is retried once a streamed byte reached the client.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict

from signalbox_api.primitives import parse_duration
from signalbox_providers.outcomes import Outcome, classify_status, retry_after_seconds
from signalbox_providers.translate import anthropic as anthropic_tx
from signalbox_providers.translate import ollama as ollama_tx
from signalbox_providers.translate.openai_format import TranslationError, kind_for_status
from signalbox_router import replies, streaming, upstream
from signalbox_router.deadlines import Deadlines
from signalbox_router.inspection import Kind
from signalbox_router.limits import ProviderLimiter, RequestPriority, estimate_tokens
from signalbox_router.selection import Candidate, Route
from signalbox_router.snapshot import ProviderEntry
from signalbox_router.state import RouterState

DEFAULT_RETRY_AFTER = 5.0
MAX_ERROR_BODY = 64 * 1024
_FAIL_FAST = frozenset({Outcome.BAD_REQUEST, Outcome.MODEL_NOT_FOUND})
_STATUS_FOR = {Outcome.TIMEOUT: 504, Outcome.RATE_LIMITED: 429}


@dataclass(frozen=True)
class Failure:
    outcome: Outcome
    status: int
    message: str
    retry_after: float | None = None


@dataclass
class Job:
    kind: Kind
    body: dict[str, Any]
    route: Route
    priority: RequestPriority
    stream: bool
    client_usage: bool
    raw: bytes | None = None  # the body as the client sent it

    @functools.cached_property
    def estimate(self) -> int:
        """Tokens the request may use, worked out only when a token limit needs it."""
        return estimate_tokens(self.body)

    def tokens_for(self, limiter: ProviderLimiter) -> int:
        return self.estimate if limiter.tokens is not None else 0


def job_for(
    kind: Kind,
    body: dict[str, Any],
    route: Route,
    priority: RequestPriority,
    raw: bytes | None = None,
) -> Job:
    stream = kind == "chat" and bool(body.get("stream"))
    usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return Job(kind, body, route, priority, stream, usage, raw)


@dataclass(frozen=True)
class _PerProvider:
    """What every request to one provider reuses, worked out once per snapshot entry."""

    entry: ProviderEntry
    headers: CIMultiDict[str]
    connect: aiohttp.ClientTimeout  # aiohttp times new connections only; the rest is ours
    first_token: float
    stream_idle: float
    request: float

    @classmethod
    def of(cls, entry: ProviderEntry) -> _PerProvider:
        t = entry.spec.timeouts
        return cls(
            entry=entry,
            headers=CIMultiDict(upstream.headers_for(entry)),
            connect=aiohttp.ClientTimeout(total=None, sock_connect=parse_duration(t.connect)),
            first_token=parse_duration(t.first_token),
            stream_idle=parse_duration(t.stream_idle),
            request=parse_duration(t.request),
        )


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, state: RouterState) -> None:
        self.session = session
        self.state = state
        self.deadlines = Deadlines()
        self._per_provider: dict[str, _PerProvider] = {}

    def _prepared(self, entry: ProviderEntry) -> _PerProvider:
        cached = self._per_provider.get(entry.name)
        if cached is None or cached.entry is not entry:
            cached = self._per_provider[entry.name] = _PerProvider.of(entry)
        return cached

    async def forward(self, job: Job) -> replies.Reply | replies.StreamReply:
        ticket = object()  # this request's place in line, should it wait for capacity
        try:
            return await self._forward(job, ticket)
        finally:
            line = self.state.waiting.get(job.route.model)
            if line is not None:
                line.remove(ticket)

    async def _forward(self, job: Job, ticket: object) -> replies.Reply | replies.StreamReply:
        failover = job.route.failover
        deadline = time.monotonic() + parse_duration(failover.retry_after_max_wait)
        attempts, last = 0, None
        while True:
            limited: float | None = None
            for cand in job.route.ordered:
                if attempts >= failover.max_attempts:
                    break
                entry = self.state.snapshot.providers.get(cand.provider)
                if entry is None:
                    continue
                limiter = self.state.limiter(entry)
                admission = limiter.try_acquire(time.monotonic(), job.tokens_for(limiter))
                if not admission.admitted:
                    wait = admission.retry_after or 0.05
                    limited = wait if limited is None else min(limited, wait)
                    continue
                if job.route.model in self.state.waiting:  # let the next in line have its turn
                    self.state.waiting[job.route.model].remove(ticket)
                attempts += 1
                if attempts > 1:
                    await asyncio.sleep(_backoff(job, attempts))
                result = await self._attempt(job, entry, cand, limiter, attempts)
                if not isinstance(result, Failure):
                    self.state.meter.attempts.observe(attempts)
                    return result
                last = result
                self.state.meter.errors.labels(cand.provider, result.outcome.value).inc()
                if not _retryable(result.outcome, failover.retry_on):
                    return self._give_up(job, last, attempts)
                self.state.meter.failovers.labels(cand.provider, result.outcome.value).inc()
            if attempts == 0 and limited is not None:
                if not await self._wait_for_capacity(job, ticket, limited, deadline):
                    self.state.meter.limited.labels(job.priority.name.lower()).inc()
                    return replies.error(
                        429,
                        "all providers for this model are at their rate limits",
                        code="rate_limit_exceeded",
                        retry_after=limited,
                    )
                continue
            break
        self.state.meter.attempts.observe(max(attempts, 1))
        if last is None and any(e.reason == "RateLimited" for e in job.route.excluded):
            return replies.error(
                429,
                "every provider for this model asked to slow down",
                code="rate_limit_exceeded",
                retry_after=DEFAULT_RETRY_AFTER,
            )
        if last is None:
            return replies.error(
                503,
                f"no eligible provider for model '{job.route.model}'",
                code="no_eligible_provider",
                retry_after=DEFAULT_RETRY_AFTER,
            )
        return self._give_up(job, last, attempts)

    async def _wait_for_capacity(
        self, job: Job, ticket: object, wait: float, deadline: float
    ) -> bool:
        """Wait out a rate limit in line: critical first, then standard, first come first
        served; sheddable requests do not wait. False when the request should be refused."""
        if job.priority == RequestPriority.SHEDDABLE or time.monotonic() + wait > deadline:
            return False
        line = self.state.line(job.route.model)
        if line.enqueued_at(ticket) is None:
            line.enqueue(ticket, job.priority, time.monotonic())
            self.state.meter.limiter_waits.labels(job.priority.name.lower()).inc()
        while True:  # only the head of the line retries; a later critical request overtakes
            while line.next_to_try() is not ticket:
                if time.monotonic() + wait > deadline:
                    return False
                await asyncio.sleep(0.005)
            await asyncio.sleep(wait)
            if line.next_to_try() is ticket:
                return True

    def _give_up(self, job: Job, last: Failure, attempts: int) -> replies.Reply:
        status = _STATUS_FOR.get(last.outcome, 502)
        return replies.error(
            status,
            f"upstream failed after {attempts} attempt(s): {last.message}",
            code=last.outcome.value,
            retry_after=(last.retry_after or DEFAULT_RETRY_AFTER) if status == 429 else None,
            headers=[(b"x-signalbox-attempts", str(attempts).encode())],
        )

    async def _attempt(
        self,
        job: Job,
        entry: ProviderEntry,
        cand: Candidate,
        limiter: ProviderLimiter,
        attempts: int,
    ) -> replies.Reply | replies.StreamReply | Failure:
        endpoint = self.state.pick_endpoint(entry)
        prepared = self._prepared(entry)
        try:
            call = upstream.build(
                entry,
                endpoint,
                job.kind,
                job.body,
                cand.model,
                headers=prepared.headers,
                raw=job.raw,
            )
        except (upstream.Unsupported, TranslationError) as exc:
            limiter.release(time.monotonic(), job.tokens_for(limiter), 0)
            return replies.error(400, str(exc), code="unsupported_request")
        started = time.monotonic()
        self.state.started(entry.name, endpoint)
        self.state.breakers.before_request(entry.name, started)
        done = _Done(
            self,
            job,
            entry=entry,
            cand=cand,
            limiter=limiter,
            endpoint=endpoint,
            started=started,
            prepared=prepared,
        )
        try:
            with self.deadlines.at(done.first_byte_due) as deadline:
                resp = await self.session.post(
                    call.url, data=call.data(), headers=call.headers, timeout=prepared.connect
                )
                headers = replies.signalbox_headers(entry.name, cand.model, attempts)
                if job.stream and resp.status < 400:
                    return await self._stream(done, resp, call.wire, headers)
                deadline.move(done.due)  # the rest of an answer may take the request's time
                if resp.status >= 400:
                    return await self._upstream_error(done, resp, call.wire, headers)
                return await self._complete(done, resp, call.wire, headers)
        except TimeoutError:  # a deadline, or aiohttp's for a new connection
            return done.failed(Failure(Outcome.TIMEOUT, 504, f"{entry.name}: timed out"))
        except aiohttp.ClientError as exc:
            return done.failed(
                Failure(Outcome.CONNECT_FAILURE, 502, f"{entry.name}: {type(exc).__name__}")
            )

    async def _upstream_error(
        self,
        done: _Done,
        resp: aiohttp.ClientResponse,
        wire: upstream.Wire,
        headers: replies.HeaderTuple,
    ) -> replies.Reply | Failure:
        try:
            raw = await resp.content.read(MAX_ERROR_BODY)
        except aiohttp.ClientError:
            raw = b""  # the status says enough
        finally:
            resp.release()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        outcome = classify_status(resp.status, parsed)
        retry_after = retry_after_seconds(resp.headers.get("retry-after"))
        if outcome == Outcome.RATE_LIMITED:
            self.state.breakers.rate_limited(
                done.entry.name, time.monotonic(), retry_after or DEFAULT_RETRY_AFTER
            )
        failure = Failure(
            outcome, resp.status, f"{done.entry.name}: HTTP {resp.status}", retry_after
        )
        if outcome in _FAIL_FAST:
            done.failed(failure, counts=False)
            body = _openai_error(wire, resp.status, parsed)
            return replies.Reply(
                resp.status, json.dumps(body).encode(), [replies.JSON_TYPE, *headers]
            )
        return done.failed(failure, counts=outcome != Outcome.RATE_LIMITED)

    async def _complete(
        self,
        done: _Done,
        resp: aiohttp.ClientResponse,
        wire: upstream.Wire,
        headers: replies.HeaderTuple,
    ) -> replies.Reply | Failure:
        try:
            raw = await resp.read()
            payload = orjson.loads(raw)
            if wire != "openai":
                convert = (
                    anthropic_tx.from_anthropic if wire == "anthropic" else (ollama_tx.from_ollama)
                )
                payload = convert(payload, done.cand.model)
                raw = json.dumps(payload).encode()
        except (ValueError, TypeError, AttributeError):
            return done.failed(
                Failure(Outcome.INVALID_RESPONSE, 502, f"{done.entry.name}: invalid response body")
            )
        finally:
            resp.release()
        done.succeeded(_usage_of(payload))
        return replies.Reply(200, raw, [replies.JSON_TYPE, *headers])

    async def _stream(
        self,
        done: _Done,
        resp: aiohttp.ClientResponse,
        wire: upstream.Wire,
        headers: replies.HeaderTuple,
    ) -> replies.StreamReply | Failure:
        try:
            first = await resp.content.readany()
        except BaseException:
            resp.release()  # the caller books the failure
            raise
        if not first:
            resp.release()
            return done.failed(
                Failure(Outcome.INVALID_RESPONSE, 502, f"{done.entry.name}: empty stream")
            )
        self.state.meter.first_token(
            done.job.route.model, done.entry.name, time.monotonic() - done.started
        )
        result = streaming.StreamResult()
        chunks = streaming.relay(
            resp,
            first,
            wire=wire,
            model=done.cand.model,
            client_usage=done.job.client_usage,
            timing=streaming.Timing(self.deadlines, done.prepared.stream_idle, done.due),
            result=result,
        )
        return replies.StreamReply(
            _finishing(chunks, done, result),
            [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), *headers],
        )


async def _finishing(chunks: Any, done: _Done, result: streaming.StreamResult) -> Any:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        if result.ok:
            done.succeeded(result.usage)
        else:
            done.failed(
                Failure(Outcome.SERVER_ERROR, 502, result.error or "stream closed"),
                usage=result.usage,
            )


class _Done:
    """Books one attempt's end: limiter, breaker, load, metrics."""

    def __init__(
        self,
        fwd: Forwarder,
        job: Job,
        *,
        entry: ProviderEntry,
        cand: Candidate,
        limiter: ProviderLimiter,
        endpoint: str,
        started: float,
        prepared: _PerProvider,
    ) -> None:
        self.fwd, self.job, self.entry, self.cand = fwd, job, entry, cand
        self.limiter, self.endpoint, self.started = limiter, endpoint, started
        self.prepared = prepared
        self.due = started + prepared.request  # the whole request, streaming included
        self.first_byte_due = min(started + prepared.first_token, self.due)

    def _book(self, ok: bool, code: int, usage: tuple[int, int] | None) -> None:
        now = time.monotonic()
        seconds = now - self.started
        actual = sum(usage) if usage else None
        self.limiter.release(now, self.job.tokens_for(self.limiter), actual)
        state = self.fwd.state
        state.finished(self.entry.name, self.endpoint, ok, seconds)
        state.meter.record(
            self.job.route.model,
            self.entry.name,
            code=code,
            seconds=seconds,
            usage=usage,
            price=self.cand.price,
        )

    def succeeded(self, usage: tuple[int, int] | None) -> None:
        self.fwd.state.breakers.success(self.entry.name)
        self._book(True, 200, usage)

    def failed(
        self, failure: Failure, *, counts: bool = True, usage: tuple[int, int] | None = None
    ) -> Failure:
        if counts:
            self.fwd.state.breakers.failure(self.entry.name, time.monotonic())
        else:
            self.fwd.state.breakers.neutral(self.entry.name)
        self._book(False, failure.status, usage)
        return failure


def _usage_of(payload: Any) -> tuple[int, int] | None:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _openai_error(wire: upstream.Wire, status: int, parsed: Any) -> dict[str, Any]:
    if wire == "anthropic":
        return anthropic_tx.error_to_openai(status, parsed)
    if wire == "ollama":
        return ollama_tx.error_to_openai(status, parsed)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed
    message = parsed.get("message") if isinstance(parsed, dict) else None
    return replies.error_body(
        status,
        str(message or f"upstream answered HTTP {status}"),
        code=kind_for_status(status)[1],
    )


def _retryable(outcome: Outcome, retry_on: Any) -> bool:
    if outcome == Outcome.AUTH_FAILED:
        return True
    # A malformed answer is a server fault as far as failover is concerned.
    as_class = Outcome.SERVER_ERROR if outcome == Outcome.INVALID_RESPONSE else outcome
    return any(r.value == as_class.value for r in retry_on)


def _backoff(job: Job, attempts: int) -> float:
    b = job.route.failover.backoff
    base, top = parse_duration(b.base), parse_duration(b.max)
    return float(min(top, base * 2 ** (attempts - 2)))
