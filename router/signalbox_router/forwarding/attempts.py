"""One attempt at one provider, and the one owner of everything it takes.

An ``Attempt`` is created right after the provider's limiter admitted the request, with no
``await`` in between, and from then on it holds the limiter slot and token estimate, the
in-flight counts and the local breaker's trial. It ends exactly once, with one ``Report``
(``finish``): the breaker, the limiter and the meter all read that report, and everything the
attempt holds is given back at once. What it reports (metrics, the provider's success rate and
latency) waits until the client's answer is sent, when the request gives it a place to wait
(``Job.after_reply``). Its creator (the failover loop) finishes it with what the exchange came
to, or with what interrupted it; a stream finishes it through its end callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import aiohttp
from multidict import CIMultiDict

from signalbox_api.primitives import parse_duration
from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome
from signalbox_router.failures import DEFAULT_RETRY_AFTER, ClientGone, UpstreamFailed
from signalbox_router.limits.breaker import BreakerSettings
from signalbox_router.limits.limiters import ProviderLimiter
from signalbox_router.routing.selection import Candidate
from signalbox_router.routing.snapshot import ProviderEntry

if TYPE_CHECKING:
    from signalbox_router.forwarding.jobs import Job
    from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # the status metrics use for a client that went away
OURS = 500  # the status metrics use for a bug of ours
_NEUTRAL = frozenset({Outcome.BAD_REQUEST, Outcome.MODEL_NOT_FOUND})


@dataclass(frozen=True)
class Prepared:
    """What every attempt at one provider reuses, worked out once per snapshot entry."""

    entry: ProviderEntry
    dialect: dialects.Dialect
    options: dict[str, str]
    headers: CIMultiDict[str]
    connect: aiohttp.ClientTimeout  # aiohttp times new connections only; the rest is ours
    first_token: float
    stream_idle: float
    request: float
    breaker: BreakerSettings
    max_output: dict[str, int]  # model or alias -> declared maxOutputTokens

    @classmethod
    def of(cls, entry: ProviderEntry) -> Prepared:
        spec = entry.spec
        dialect = dialects.dialect(spec.type)
        headers = dialect.headers(entry.api_key, spec.auth.header if spec.auth else None)
        headers["Content-Type"] = "application/json"
        headers["Accept-Encoding"] = "identity"  # answers are read as they come, never inflated
        t = spec.timeouts
        return cls(
            entry=entry,
            dialect=dialect,
            options=dict(dialect.options(spec)),
            headers=CIMultiDict(headers),
            connect=aiohttp.ClientTimeout(total=None, sock_connect=parse_duration(t.connect)),
            first_token=parse_duration(t.first_token),
            stream_idle=parse_duration(t.stream_idle),
            request=parse_duration(t.request),
            breaker=BreakerSettings.of(spec.circuit_breaker),
            max_output={
                name: m.max_output_tokens
                for m in spec.models
                if m.max_output_tokens
                for name in (m.name, *m.aliases)
            },
        )


class Report(NamedTuple):
    """How an attempt ended, told once: ``code`` is 200, the upstream's status, 499 (the
    client's) or 500 (ours); ``failure`` is what went wrong upstream, if anything did;
    ``usage`` the prompt and completion tokens, ``estimated`` when the router counted them."""

    code: int
    failure: UpstreamFailed | None = None
    usage: tuple[int, int] | None = None
    estimated: bool = False

    @classmethod
    def success(cls, usage: tuple[int, int] | None, *, estimated: bool = False) -> Report:
        return cls(200, None, usage, estimated)

    @classmethod
    def failed(
        cls,
        failure: UpstreamFailed,
        usage: tuple[int, int] | None = None,
        *,
        estimated: bool = False,
    ) -> Report:
        return cls(failure.upstream_status or failure.status, failure, usage, estimated)

    @classmethod
    def interrupted(cls, exc: BaseException | None) -> Report:
        """An attempt ended by something other than its exchange: the client gone, a
        cancellation, or a bug of ours. It says nothing about the provider."""
        if exc is None or isinstance(exc, asyncio.CancelledError | ClientGone | GeneratorExit):
            return cls(CLIENT_CLOSED)
        log.error("an attempt ended by %s", type(exc).__name__)
        return cls(OURS)


class Attempt:
    """One try; see the module docstring for what it owns."""

    __slots__ = (
        "cand",
        "capped",
        "due",
        "endpoint",
        "entry",
        "finished",
        "first_byte_due",
        "job",
        "limiter",
        "number",
        "prepared",
        "started",
        "state",
        "trace",
        "trial",
    )

    def __init__(
        self,
        state: RouterState,
        job: Job,
        *,
        prepared: Prepared,
        cand: Candidate,
        limiter: ProviderLimiter,
        endpoint: str,
        number: int,
    ) -> None:
        # No await from the limiter's admission to here: nothing can come between.
        self.state, self.job, self.prepared, self.cand = state, job, prepared, cand
        self.entry = prepared.entry
        self.limiter, self.endpoint, self.number = limiter, endpoint, number
        self.started = time.monotonic()
        self.due = self.started + prepared.request  # the whole request, streaming included
        self.first_byte_due = min(self.started + prepared.first_token, self.due)
        self.finished = False
        self.capped = False  # the client's total timeout comes before the provider's
        state.started(self.entry.name, endpoint)
        self.trial = state.breakers.before_request(self.entry.name, self.started)
        if job.due is not None and job.due < self.due:  # the request's total timeout
            self.due, self.capped = job.due, True
            self.first_byte_due = min(self.first_byte_due, job.due)
        trace = job.trace
        self.trace = (
            None
            if trace is None
            else trace.attempt(self.entry.name, self.entry.spec.type, cand.model, endpoint, number)
        )

    @property
    def name(self) -> str:
        return self.entry.name

    def finish(self, report: Report) -> None:
        """End the attempt with ``report``: the breaker hears it, what the attempt holds goes
        back at once, and what it reports waits for the answer to be out (``job.after_reply``),
        or goes at once when the request has nothing to wait for. Only the first call counts."""
        if self.finished:
            return
        self.finished = True
        now = time.monotonic()
        if report.failure is None and report.code == 200:  # the common case, without a call
            self.state.breakers.success(self.entry.name, self.trial)
        else:
            self._tell_breaker(report, now)
        job, usage = self.job, report.usage
        try:
            self.limiter.release(now, job.tokens_for(self.limiter), sum(usage) if usage else None)
        finally:  # the in-flight count goes back even should the limiter's books fail
            self.state.finished(self.entry.name, self.endpoint)
        seconds = now - self.started
        if self.trace is not None:
            failure = report.failure
            self.trace.end(
                report.code,
                None if failure is None else failure.outcome.value,
                usage,
                report.estimated,
            )
        if job.after_reply is None:
            self._report(report, seconds)
        else:
            job.after_reply.add(partial(self._report, report, seconds))

    def _tell_breaker(self, report: Report, now: float) -> None:
        name, breakers, failure = self.entry.name, self.state.breakers, report.failure
        if failure is None:  # the client's or ours: says nothing about the provider
            breakers.neutral(name, self.trial)
            return
        self.state.last_error[name] = failure.outcome.value
        if failure.outcome == Outcome.AUTH_FAILED:
            breakers.key_refused(name, now, time.time(), self.trial)
        elif failure.outcome == Outcome.RATE_LIMITED:
            wait = failure.retry_after or DEFAULT_RETRY_AFTER
            breakers.rate_limited(name, now, wait, self.trial)
        elif failure.outcome == Outcome.QUOTA_EXHAUSTED:
            breakers.rate_limited(name, now, self.prepared.breaker.quota_cooldown, self.trial)
        elif failure.outcome in _NEUTRAL or (
            failure.outcome == Outcome.TIMEOUT and self.capped and now >= self.due
        ):  # cut by the client's deadline: says nothing about the provider
            breakers.neutral(name, self.trial)
        else:
            breakers.failure(name, now, self.trial)

    def _report(self, report: Report, seconds: float) -> None:
        self.state.observed(self.entry.name, report.failure is None and report.code == 200, seconds)
        self.state.meter.record(
            self.job.route.model,
            self.entry.name,
            code=report.code,
            seconds=seconds,
            usage=report.usage,
            price=self.cand.price,
            estimated=report.estimated,
            tenant=self.job.tenant,
        )
        if self.job.access is not None:
            self.job.access.attempted(self.entry.name, self.number, report.usage, report.estimated)

    def __repr__(self) -> str:
        return f"Attempt({self.entry.name}#{self.number}, finished={self.finished})"
