"""Sends a request to the providers of its route, in order, until one answers.

Read top to bottom, a request: takes the next candidate of its route; builds the provider's
request (a request this provider cannot take is a 400 before anything is held); asks the
provider's limiter; opens an ``Attempt`` (which owns what it took and gives it back however the
attempt ends); and lets ``exchange`` talk to the provider. An attempt that fails raises
``UpstreamFailed``; the policy's ``retryOn`` says whether the next candidate gets a turn (with
back-off, up to ``maxAttempts``). 400/404/413/422 answers go back at once; 401/403 move on and
stop traffic to that provider; a malformed answer counts as a server error; a 429 cools the
provider for its Retry-After. When every provider is at its rate limit the request waits in
line, one line per model (bounded; critical before standard; sheddable is refused at once),
and then gets 429 with Retry-After. Nothing is retried once a streamed byte reached the client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import orjson

from signalbox_api.primitives import parse_duration
from signalbox_providers import dialects
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.forwarding import exchange, failover_rules
from signalbox_router.forwarding.attempts import DEFAULT_RETRY_AFTER, Attempt, Prepared
from signalbox_router.forwarding.deadlines import Deadlines
from signalbox_router.forwarding.failures import RequestFailed, UpstreamFailed
from signalbox_router.forwarding.jobs import Job
from signalbox_router.limits.priority import RequestPriority
from signalbox_router.routing.selection import Candidate
from signalbox_router.routing.snapshot import ProviderEntry
from signalbox_router.state import RouterState


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, state: RouterState) -> None:
        self.session = session
        self.state = state
        self.deadlines = Deadlines()
        self._prepared: dict[str, Prepared] = {}

    async def forward(self, job: Job) -> replies.Reply | replies.StreamReply:
        ticket = object()  # this request's place in line, should it wait for capacity
        total = job.route.failover.total_timeout
        if total is not None or job.controls.timeout is not None:
            seconds = job.controls.total(None if total is None else parse_duration(total))
            job.due = None if seconds is None else time.monotonic() + seconds
        try:
            return await self._failover(job, ticket)
        except _OutOfTime as late:
            return late.reply()
        except UpstreamFailed as failure:
            return self._give_up(failure)
        except RequestFailed as failed:
            return failed.reply()
        finally:
            self.state.leave_line(job.route.model, ticket)

    async def _failover(self, job: Job, ticket: object) -> replies.Reply | replies.StreamReply:
        failover = job.route.failover
        wait_until = time.monotonic() + parse_duration(failover.retry_after_max_wait)
        max_attempts = job.controls.attempts(failover.max_attempts)
        if job.due is not None:
            wait_until = min(wait_until, job.due)
        attempts, backed_off, last = 0, 0, None
        failed: set[str] = set()  # a provider that failed this request is not tried again
        while True:
            limited: float | None = None
            for cand in job.route.ordered:
                if attempts >= max_attempts or cand.provider in failed:
                    continue
                entry = self._eligible(cand.provider)
                if entry is not None and attempts > backed_off:  # once per failed attempt
                    pause = failover_rules.backoff(failover, attempts + 1)
                    _check_time(job, attempts, pause)
                    await asyncio.sleep(pause)
                    backed_off = attempts
                    entry = self._eligible(cand.provider)  # again: the pause let things change
                if entry is None:
                    continue
                try:
                    return await self._try(job, ticket, entry, cand, attempts + 1)
                except _Limited as refused:
                    limited = refused.wait if limited is None else min(limited, refused.wait)
                    continue
                except UpstreamFailed as failure:
                    attempts, last = attempts + 1, failure
                    failed.add(cand.provider)
                    failure.attempts = attempts
                    self.state.meter.errors.labels(cand.provider, failure.outcome.value).inc()
                    if not failover_rules.retryable(failure.outcome, failover):
                        raise
                    _check_time(job, attempts, 0.0)
                    self.state.meter.failovers.labels(cand.provider, failure.outcome.value).inc()
            if limited is not None and attempts < max_attempts:  # the rest are only busy
                try:
                    await self._wait_for_capacity(job, ticket, limited, wait_until)
                except RequestFailed:
                    if last is None:
                        raise
                    break  # no time to wait: the failure the client gets is the last one
                continue
            break
        self.state.meter.attempts.observe(max(attempts, 1))
        if last is not None:
            raise last
        raise failover_rules.nothing_eligible(job.route)

    async def _try(
        self, job: Job, ticket: object, entry: ProviderEntry, cand: Candidate, number: int
    ) -> replies.Reply | replies.StreamReply:
        """One attempt at ``cand``: the reply, or UpstreamFailed, or _Limited."""
        prepared = self._prepare(entry)
        if job.ingress is not None:
            wrapped = job.ingress(prepared.dialect, entry.spec.type)
            prepared = dataclasses.replace(prepared, dialect=wrapped)
        endpoint = self.state.pick_endpoint(entry)
        try:  # before anything is held: a request this provider cannot take is the client's
            outbound = prepared.dialect.request(
                job.kind,
                endpoint,
                job.body,
                cand.model,
                raw=job.raw,
                opts=prepared.options,
                max_output_tokens=prepared.max_output.get(cand.model),
            )
        except dialects.TranslationError as exc:  # Unsupported, or the request is malformed
            raise RequestFailed(400, str(exc), code="unsupported_request") from exc
        limiter = self.state.limiter(entry)
        admission = limiter.try_acquire(time.monotonic(), job.tokens_for(limiter))
        if not admission.admitted:
            raise _Limited(admission.retry_after or 0.05)
        self.state.leave_line(job.route.model, ticket)  # let the next in line have its turn
        attempt = Attempt(
            self.state,
            job,
            prepared=prepared,
            cand=cand,
            limiter=limiter,
            endpoint=endpoint,
            number=number,
        )
        if job.due is not None:
            attempt.cap(job.due)
        try:  # the attempt owns what it took from here; it books however this ends
            reply = await exchange.send(self.session, self.deadlines, attempt, outbound)
        except BaseException as exc:
            attempt.close(exc)
            raise
        attempt.done()
        self.state.meter.attempts.observe(number)
        return reply

    def _eligible(self, name: str) -> ProviderEntry | None:
        """``name``'s entry if it may take an attempt now, not only when the request was
        routed: a key refused, a breaker opened or its half-open trials taken meanwhile (a wait
        or a back-off lies between) rule it out. No await from here to the attempt's start."""
        entry = self.state.snapshot.providers.get(name)
        if entry is None or not entry.usable or self.state.breakers.is_open(name, time.monotonic()):
            return None
        return entry

    def _prepare(self, entry: ProviderEntry) -> Prepared:
        cached = self._prepared.get(entry.name)
        if cached is None or cached.entry is not entry:
            cached = self._prepared[entry.name] = Prepared.of(entry)
            self.state.breakers.configure(entry.name, cached.breaker)
        return cached

    async def _wait_for_capacity(
        self, job: Job, ticket: object, wait: float, wait_until: float
    ) -> None:
        """Wait out a rate limit in line: critical first, then standard, first come first
        served; sheddable requests do not wait. Raises a 429 when the request must not."""
        if job.priority == RequestPriority.SHEDDABLE or time.monotonic() + wait > wait_until:
            raise self._refused(job, wait)
        line = self.state.line(job.route.model)
        if line.enqueued_at(ticket) is None:
            line.enqueue(ticket, job.priority, time.monotonic())
            self.state.meter.limiter_waits.labels(job.priority.name.lower()).inc()
        while True:  # only the head of the line retries; a later critical request overtakes
            while line.next_to_try() is not ticket:
                if time.monotonic() + wait > wait_until:
                    raise self._refused(job, wait)
                await asyncio.sleep(0.005)
            await asyncio.sleep(wait)
            if line.next_to_try() is ticket:
                return

    def _refused(self, job: Job, wait: float) -> RequestFailed:
        self.state.meter.limited.labels(job.priority.name.lower()).inc()
        return RequestFailed(
            429,
            "all providers for this model are at their rate limits",
            code="rate_limit_exceeded",
            retry_after=wait,
        )

    def _give_up(self, failure: UpstreamFailed) -> replies.Reply:
        """The client's answer once no attempt is left: the provider's own error when the
        request was at fault, else ours."""
        counted = (b"x-signalbox-attempts", str(failure.attempts).encode())
        if failure.upstream is not None:
            body = redaction.redact(orjson.dumps(failure.upstream), self.state.secrets())
            return replies.Reply(failure.status, body, [replies.JSON_TYPE, *failure.names])
        status = failure.status
        message = redaction.redact_text(failure.message, self.state.secrets())
        return replies.error(
            status,
            f"upstream failed after {failure.attempts} attempt(s): {message}",
            code=failure.outcome.value,
            retry_after=(failure.retry_after or DEFAULT_RETRY_AFTER) if status == 429 else None,
            headers=[counted],
        )


class _OutOfTime(Exception):
    """The request's total timeout passed (or would, before the next attempt could start)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def reply(self) -> replies.Reply:
        return replies.error(
            504,
            f"the request's total timeout passed after {self.attempts} attempt(s)",
            code="total_timeout",
            headers=[(b"x-signalbox-attempts", str(self.attempts).encode())],
        )


def _check_time(job: Job, attempts: int, pause: float) -> None:
    """Raise _OutOfTime when the request's deadline comes before ``pause`` seconds pass."""
    if job.due is not None and time.monotonic() + pause >= job.due:
        raise _OutOfTime(attempts)


class _Limited(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait
