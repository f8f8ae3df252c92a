"""One attempt at one provider, and the one owner of everything it takes.

An ``Attempt`` is created right after the provider's limiter admitted the request, with no
``await`` in between, and from then on it holds the limiter slot and token estimate, the
in-flight counts, the local breaker's trial and the upstream response. It books its end exactly
once (``succeeded``, ``failed``, or, from ``close``, whatever ended it: a failure, a client gone,
a cancellation, a bug of ours), and that booking gives everything back at once. What it
reports (metrics, the provider's success rate and latency) waits until the client's answer is
sent, when the request gives it a place to wait (``Job.after_reply``). Its creator calls
``close(exc)`` on any exception and ``done()`` on return; a stream takes it over with
``hand_over`` and closes it when the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict

from signalbox_api.primitives import parse_duration
from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome
from signalbox_router.forwarding.failures import ClientGone, UpstreamFailed
from signalbox_router.limits.breaker import Settings
from signalbox_router.limits.limiters import ProviderLimiter
from signalbox_router.routing.selection import Candidate
from signalbox_router.routing.snapshot import ProviderEntry

if TYPE_CHECKING:
    from signalbox_router.forwarding.jobs import Job
    from signalbox_router.state import RouterState

log = logging.getLogger(__name__)
DEFAULT_RETRY_AFTER = 5.0
CLIENT_CLOSED = 499  # the status metrics use for a client that went away
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
    breaker: Settings
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
            breaker=Settings.of(spec.circuit_breaker),
            max_output={
                name: m.max_output_tokens
                for m in spec.models
                if m.max_output_tokens
                for name in (m.name, *m.aliases)
            },
        )


class Attempt:
    """One try; see the module docstring for what it owns."""

    __slots__ = (
        "_handed_over",
        "booked",
        "cand",
        "capped",
        "due",
        "endpoint",
        "entry",
        "first_byte_due",
        "job",
        "limiter",
        "number",
        "prepared",
        "response",
        "started",
        "state",
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
        self.response: aiohttp.ClientResponse | None = None
        self.booked = False
        self.capped = False  # the client's total timeout comes before the provider's
        self._handed_over = False
        state.started(self.entry.name, endpoint)
        self.trial = state.breakers.before_request(self.entry.name, self.started)

    def cap(self, due: float) -> None:
        """End the attempt by ``due`` at the latest: the request's total timeout."""
        if due < self.due:
            self.due, self.capped = due, True
            self.first_byte_due = min(self.first_byte_due, due)

    def done(self) -> None:
        """The exchange returned: a complete answer was booked by it; a stream took the
        attempt over; anything else is booked now (as the client's)."""
        if not self._handed_over:
            self.close()

    def hand_over(self) -> Attempt:
        """A stream takes the attempt over; it must call ``close`` when it ends."""
        self._handed_over = True
        return self

    def succeeded(self, usage: tuple[int, int] | None, *, estimated: bool = False) -> None:
        """Book a success; ``estimated``: the router counted ``usage`` (the upstream sent none)."""
        if self.booked:
            return
        self.state.breakers.success(self.entry.name, self.trial)
        self._book(True, 200, usage, estimated)

    def failed(
        self,
        failure: UpstreamFailed,
        usage: tuple[int, int] | None = None,
        *,
        estimated: bool = False,
    ) -> None:
        if self.booked:
            return
        name, now, breakers = self.entry.name, time.monotonic(), self.state.breakers
        self.state.last_error[name] = failure.outcome.value
        if failure.outcome == Outcome.AUTH_FAILED:
            breakers.key_refused(name, now, time.time(), self.trial)
        elif failure.outcome == Outcome.RATE_LIMITED:
            wait = failure.retry_after or DEFAULT_RETRY_AFTER
            breakers.rate_limited(name, now, wait, self.trial)
        elif failure.outcome in _NEUTRAL or (
            failure.outcome == Outcome.TIMEOUT and self.capped and now >= self.due
        ):  # cut by the client's deadline: says nothing about the provider
            breakers.neutral(name, self.trial)
        else:
            breakers.failure(name, now, self.trial)
        self._book(False, failure.upstream_status or failure.status, usage, estimated)

    def close(self, exc: BaseException | None = None) -> None:
        """Book whatever ended the attempt, if nothing was booked yet. Idempotent."""
        if self.booked:
            return
        if isinstance(exc, UpstreamFailed):
            self.failed(exc)
        elif isinstance(exc, TimeoutError):
            self.failed(UpstreamFailed(Outcome.TIMEOUT, f"{self.entry.name}: timed out"))
        elif isinstance(exc, aiohttp.ClientError):
            self.failed(UpstreamFailed(Outcome.CONNECT_FAILURE, f"{self.entry.name}: failed"))
        elif exc is None or isinstance(exc, asyncio.CancelledError | ClientGone | GeneratorExit):
            self.state.breakers.neutral(self.entry.name, self.trial)
            self._book(False, CLIENT_CLOSED, None)
        else:  # a bug of ours: says nothing about the provider
            log.error("attempt at %s ended by %s", self.entry.name, type(exc).__name__)
            self.state.breakers.neutral(self.entry.name, self.trial)
            self._book(False, 500, None)

    def _book(
        self, ok: bool, code: int, usage: tuple[int, int] | None, estimated: bool = False
    ) -> None:
        """Give back what the attempt holds at once; report how it went once the answer is
        out (``job.after_reply``), or at once when the request has nothing to wait for."""
        self.booked = True
        now = time.monotonic()
        seconds = now - self.started
        response, self.response = self.response, None
        if response is not None:
            if ok:
                response.release()
            else:
                response.close()  # nothing more is read: the connection goes too
        job = self.job
        try:
            self.limiter.release(now, job.tokens_for(self.limiter), sum(usage) if usage else None)
        finally:  # the in-flight count goes back even should the limiter's books fail
            self.state.finished(self.entry.name, self.endpoint)
        if job.after_reply is None:
            self._report(ok, code, seconds, usage, estimated)
        else:
            job.after_reply.add(partial(self._report, ok, code, seconds, usage, estimated))

    def _report(
        self, ok: bool, code: int, seconds: float, usage: tuple[int, int] | None, estimated: bool
    ) -> None:
        self.state.observed(self.entry.name, ok, seconds)
        self.state.meter.record(
            self.job.route.model,
            self.entry.name,
            code=code,
            seconds=seconds,
            usage=usage,
            price=self.cand.price,
            estimated=estimated,
        )

    def __repr__(self) -> str:
        return f"Attempt({self.entry.name}#{self.number}, booked={self.booked})"
