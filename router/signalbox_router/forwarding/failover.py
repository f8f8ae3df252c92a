"""Sends a request to the providers of its route, in order, until one answers.

Read top to bottom, one attempt (``_try``) is a chain:

1. **translate**: the provider's dialect builds its request; one this provider cannot take is
   the client's 400 before anything is held;
2. **admit**: the provider's limiter says yes, or how long to wait (``Busy``);
3. **send**: an ``Attempt`` takes what was admitted, and ``exchange.send`` says what happened:
   an answer, a stream's start, or a failure;
4. **finish**: the attempt ends with one ``Report`` (breaker, limiter and meter read it), at once
   for an answer or a failure, through the stream's end callback for a stream;
5. **decide**: the loop (``_failover``) moves to the next candidate when the policy's
   ``retryOn`` allows, with jittered exponential back-off, up to ``maxAttempts``; once every
   candidate failed, those that failed transiently (a connection, a timeout, a 5xx, an invalid
   answer) are tried again, so a policy of one provider still retries. A failure of one pod of an
   in-cluster provider (a refused connection, a timeout, a 5xx) tries another of its ready pods
   before the next provider (``another_pod``), as far as ``maxAttempts`` leaves one attempt for
   each provider after it.

400/404/413/422 answers go back at once; 401/403 move on and stop traffic to that provider; a
malformed answer counts as a server error; a 429 cools the provider for its Retry-After, and an
answer that its quota is spent (402, ``insufficient_quota``) for its ``quotaCooldown``. When
every provider is at its rate limit the request waits in line, one line per model (bounded;
critical before standard; sheddable is refused at once), and then gets 429 with Retry-After.
Nothing is retried past a stream's commit point (its first token). The request ends by returning a
reply or raising a ``RequestError`` (``signalbox_router.failures``); the edge shapes the reply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from functools import partial

import aiohttp

from signalbox_api.policy import Failover
from signalbox_api.primitives import parse_duration
from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome
from signalbox_router.asgi import off_loop, replies
from signalbox_router.failures import (
    DEFAULT_RETRY_AFTER,
    BadRequest,
    NoEligibleProvider,
    OutOfTime,
    RateLimited,
    RequestError,
    UpstreamFailed,
)
from signalbox_router.forwarding import exchange, streaming
from signalbox_router.forwarding.attempts import Attempt, Prepared, Report
from signalbox_router.forwarding.deadlines import Deadlines
from signalbox_router.forwarding.jobs import Job
from signalbox_router.limits.limiters import ProviderLimiter
from signalbox_router.limits.priority import RequestPriority
from signalbox_router.routing.selection import Candidate, Route
from signalbox_router.routing.snapshot import ProviderEntry
from signalbox_router.state import RouterState

Answer = replies.Reply | replies.StreamReply
log = logging.getLogger(__name__)
_UNTRANSLATABLE = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


@dataclass(frozen=True, slots=True)
class Busy:
    """The provider's limiter said no: ask again in ``wait`` seconds."""

    wait: float


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, state: RouterState) -> None:
        self.session = session
        self.state = state
        self.deadlines = Deadlines()
        self._prepared: dict[str, Prepared] = {}

    async def forward(self, job: Job) -> Answer:
        """The answer to ``job``; raises a ``RequestError`` when there is none."""
        ticket = object()  # this request's place in line, should it wait for capacity
        total = job.route.failover.total_timeout
        if total is not None or job.controls.timeout is not None:
            seconds = job.controls.total(None if total is None else parse_duration(total))
            job.due = None if seconds is None else time.monotonic() + seconds
        try:
            return await self._failover(job, ticket)
        finally:
            self.state.leave_line(job.route.model, ticket)

    async def _failover(self, job: Job, ticket: object) -> Answer:
        failover = job.route.failover
        wait_until = time.monotonic() + parse_duration(failover.retry_after_max_wait)
        max_attempts = job.controls.attempts(failover.max_attempts)
        if job.due is not None:
            wait_until = min(wait_until, job.due)
        attempts, backed_off, last = 0, 0, None
        failed: dict[str, Outcome] = {}  # who failed this request, and how
        again = False  # every candidate failed: the transient failures may be tried again
        while True:
            limited: float | None = None
            tried = attempts
            for cand in job.route.ordered:
                if attempts >= max_attempts or not may_try(failed.get(cand.provider), again):
                    continue
                entry = self._eligible(cand.provider)
                if entry is not None and attempts > backed_off:  # once per failed attempt
                    entry = await self._back_off(job, cand.provider, attempts)
                    backed_off = attempts
                pods: list[str] = []  # the provider's endpoints this request tried
                answer: Answer | Busy | None = None
                while entry is not None:  # another ready pod first, then the next provider
                    try:
                        answer = await self._try(job, ticket, entry, cand, attempts + 1, pods=pods)
                        break
                    except UpstreamFailed as failure:
                        attempts, last = attempts + 1, failure
                        failed[cand.provider] = failure.outcome
                        self._failed(job, cand.provider, failure, attempts)
                        pod = another_pod(entry, pods, failure.outcome) and (
                            attempts + later_candidates(job.route, cand) < max_attempts
                        )
                        entry = self._eligible(cand.provider) if pod else None
                if answer is None:
                    continue
                if isinstance(answer, Busy):
                    limited = answer.wait if limited is None else min(limited, answer.wait)
                    continue
                return answer
            if limited is not None and attempts < max_attempts:  # the rest are only busy
                try:
                    await self._wait_for_capacity(job, ticket, limited, wait_until)
                except RequestError:
                    if last is None:
                        raise
                    break  # no time to wait: the failure the client gets is the last one
                continue
            if round_again(attempts, max_attempts, attempts > tried or not again, failed):
                again = True  # round again, the providers that failed transiently included
                continue
            break
        self.state.meter.attempts.observe(max(attempts, 1))
        if last is not None:
            raise last
        raise nothing_eligible(job.route)

    async def _back_off(self, job: Job, provider: str, attempts: int) -> ProviderEntry | None:
        """Wait before the next attempt; then ``provider``'s entry if it is still eligible (the
        pause let things change)."""
        pause = backoff(job.route.failover, attempts + 1, random.random())  # noqa: S311
        _check_time(job, attempts, pause)
        await asyncio.sleep(pause)
        return self._eligible(provider)

    def _failed(self, job: Job, provider: str, failure: UpstreamFailed, attempts: int) -> None:
        """Count a failed attempt; raise it when it ends the request (not retryable, or no
        time left)."""
        failure.attempts = attempts
        self.state.meter.errors.labels(provider, failure.outcome.value).inc()
        if not retryable(failure.outcome, job.route.failover):
            raise failure
        _check_time(job, attempts, 0.0)
        self.state.meter.failovers.labels(provider, failure.outcome.value).inc()

    async def _try(
        self,
        job: Job,
        ticket: object,
        entry: ProviderEntry,
        cand: Candidate,
        number: int,
        *,
        pods: list[str],
    ) -> Answer | Busy:
        """One attempt at ``cand``, on one of its endpoints not in ``pods`` (which it joins):
        an answer, ``Busy``, or UpstreamFailed raised."""
        prepared = self._prepare(entry, job)
        endpoint = self.state.pick_endpoint(entry, pods)
        limiter = self.state.limiter(entry)
        # Translate, before anything is held: what this provider cannot take is the client's.
        outbound, tokens = await off_loop.run(
            job.size, _translated, job, prepared, endpoint, cand, limiter
        )
        admission = limiter.try_acquire(time.monotonic(), tokens)  # admit
        if not admission.admitted:
            return Busy(admission.retry_after or 0.05)
        pods.append(endpoint)
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
        try:  # send: the attempt owns what it took from here, and ends however this does
            result = await exchange.send(self.session, self.deadlines, attempt, outbound)
        except BaseException as exc:  # a cancellation (the client left), or a bug of ours
            attempt.finish(Report.interrupted(exc))
            raise
        if isinstance(result, UpstreamFailed):  # finish, then let the loop decide
            attempt.finish(Report.failed(result))
            raise result
        self.state.meter.attempts.observe(number)
        names = exchange.names(attempt)
        if isinstance(result, exchange.Answered):
            if attempt.trace is not None:
                attempt.trace.answered(result.body)
            attempt.finish(Report(200, None, result.usage, result.estimated))
            return replies.Reply(200, result.body, [replies.JSON_TYPE, *names])
        first_token = time.monotonic() - attempt.started
        self.state.meter.first_token(job.route.model, entry.name, first_token)
        if attempt.trace is not None:
            attempt.trace.committed(first_token, result.translator)
        watch = streaming.Watch(
            entry.name, prepared.stream_idle, attempt.due, job.body, self.state.secrets()
        )
        chunks = streaming.relay(self.deadlines, result, watch, on_end=attempt.finish)
        return replies.StreamReply(
            chunks,
            [*replies.STREAM_HEADERS, *names],
            close=partial(_abandon, attempt, result),
            usage=lambda: result.translator.usage,
        )

    def _eligible(self, name: str) -> ProviderEntry | None:
        """``name``'s entry if it may take an attempt now, not only when the request was
        routed: a key refused, a breaker opened or its half-open trials taken meanwhile (a wait
        or a back-off lies between) rule it out. No await from here to the attempt's start."""
        entry = self.state.snapshot.providers.get(name)
        if entry is None or not entry.usable or self.state.breakers.is_open(name, time.monotonic()):
            return None
        return entry

    def _prepare(self, entry: ProviderEntry, job: Job) -> Prepared:
        cached = self._prepared.get(entry.name)
        if cached is None or cached.entry is not entry:
            cached = self._prepared[entry.name] = Prepared.of(entry)
            self.state.breakers.configure(entry.name, cached.breaker)
        if job.ingress is None:
            return cached
        return dataclasses.replace(cached, dialect=job.ingress(cached.dialect))

    async def _wait_for_capacity(
        self, job: Job, ticket: object, wait: float, wait_until: float
    ) -> None:
        """Wait out a rate limit in line: critical first, then standard, first come first
        served; sheddable requests do not wait. Raises RateLimited when the request must not."""
        if job.priority == RequestPriority.SHEDDABLE or time.monotonic() + wait > wait_until:
            raise self._refused(job, wait)
        began = time.monotonic()
        try:
            await self._wait_in_line(job, ticket, wait, wait_until)
        finally:
            if job.trace is not None:
                job.trace.waited += time.monotonic() - began

    async def _wait_in_line(self, job: Job, ticket: object, wait: float, wait_until: float) -> None:
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

    def _refused(self, job: Job, wait: float) -> RateLimited:
        self.state.meter.limited.labels(job.priority.name.lower()).inc()
        return RateLimited(
            "all providers for this model are at their rate limits", retry_after=wait
        )


def _abandon(attempt: Attempt, started: exchange.StreamStarted) -> None:
    """However sending a stream ended (even before the relay ran): the attempt is finished and
    the upstream closed, should the relay not have done both."""
    attempt.finish(Report.interrupted(None))
    started.response.close()


# The loop's pure decisions.


def nothing_eligible(route: Route) -> RequestError:
    """What a request is told when no provider of its route may take it now."""
    if route.unmet:
        needed = ", ".join(sorted(c.value for c in route.unmet))
        return BadRequest(
            f"no provider of model {route.model!r} offers what this request needs ({needed})",
            code="unsupported_request",
        )
    if any(e.reason == "RateLimited" for e in route.excluded):
        return RateLimited(
            "every provider for this model asked to slow down", retry_after=DEFAULT_RETRY_AFTER
        )
    return NoEligibleProvider(route.model)


# Failures worth another try at the same provider once no other is left: a moment's trouble,
# not a verdict on the request or the account (a refused key, a spent quota, a rate limit).
TRANSIENT = frozenset(
    {Outcome.CONNECT_FAILURE, Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.INVALID_RESPONSE}
)


def may_try(failed: Outcome | None, again: bool) -> bool:
    """Whether a candidate that came to ``failed`` in this request (None: not tried) may take
    an attempt: always when untried; once every candidate failed (``again``), when its failure
    was transient."""
    return failed is None or (again and failed in TRANSIENT)


def round_again(
    attempts: int, max_attempts: int, progressed: bool, failed: dict[str, Outcome]
) -> bool:
    """Whether to go round the candidates once more after a pass that tried them all:
    attempts are left, the last pass tried somebody (``progressed``), and a provider failed
    transiently."""
    return attempts < max_attempts and progressed and any(o in TRANSIENT for o in failed.values())


# Failures of one pod, not of the model or the account: another ready pod of the same
# in-cluster provider may well answer (a pod terminating, restarting or overloaded).
POD_FAILURES = frozenset({Outcome.CONNECT_FAILURE, Outcome.TIMEOUT, Outcome.SERVER_ERROR})


def another_pod(entry: ProviderEntry, tried: list[str], outcome: Outcome) -> bool:
    """Whether a failed attempt tries another endpoint of the same provider before the next
    provider: the failure was the pod's, and a ready endpoint is left untried."""
    return outcome in POD_FAILURES and any(e not in tried for e in entry.endpoints)


def later_candidates(route: Route, cand: Candidate) -> int:
    """How many candidates come after ``cand`` in ``route``: attempts another pod of ``cand``
    must leave for them (a pool whose every pod fails still fails over)."""
    ordered = route.ordered
    return len(ordered) - 1 - ordered.index(cand)


def retryable(outcome: Outcome, failover: Failover) -> bool:
    """Whether a failure moves the request on to the next candidate."""
    if outcome in (Outcome.AUTH_FAILED, Outcome.QUOTA_EXHAUSTED):
        return True  # this provider's key or account is refused; another provider's may not be
    # A malformed answer is a server fault as far as failover is concerned.
    as_class = Outcome.SERVER_ERROR if outcome == Outcome.INVALID_RESPONSE else outcome
    return any(r.value == as_class.value for r in failover.retry_on)


def backoff(failover: Failover, attempt: int, jitter: float) -> float:
    """Seconds to wait before attempt number ``attempt``: exponential (the second waits up to
    ``base``), capped at ``max``, and spread by ``jitter`` (0 to 1) over its upper half, so
    requests that failed together do not come back together."""
    b = failover.backoff
    base, top = parse_duration(b.base), parse_duration(b.max)
    return float(min(top, base * 2 ** (attempt - 2))) * (0.5 + jitter / 2)


def _check_time(job: Job, attempts: int, pause: float) -> None:
    """Raise OutOfTime when the request's deadline comes before ``pause`` seconds pass."""
    if job.due is not None and time.monotonic() + pause >= job.due:
        raise OutOfTime(attempts)


def _translated(
    job: Job, prepared: Prepared, endpoint: str, cand: Candidate, limiter: ProviderLimiter
) -> tuple[dialects.Outbound, int]:
    """The request in the provider's dialect, and the tokens it takes from ``limiter``: one
    step, which a large body takes off the event loop."""
    try:
        outbound = prepared.dialect.request(
            dialects.RequestParts(
                job.kind,
                endpoint,
                job.body,
                cand.model,
                prepared.options,
                job.raw,
                prepared.max_output.get(cand.model),
            )
        )
    except dialects.TranslationError as exc:  # Unsupported, or the request is malformed
        raise BadRequest(str(exc), code="unsupported_request") from exc
    except _UNTRANSLATABLE as exc:  # a body no translation foresaw: the client's all the same
        # The exception's type only: its words may quote the request.
        log.warning(
            "a request for %s could not be translated (%s)", cand.provider, type(exc).__name__
        )
        raise BadRequest(
            "the request could not be translated for its provider", code="invalid_request"
        ) from exc
    return outbound, job.tokens_for(limiter)
