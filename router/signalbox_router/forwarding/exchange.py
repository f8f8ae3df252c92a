"""One HTTP exchange with one provider: send, then read and judge the answer, and say what it
came to. It books nothing: the failover loop finishes the attempt with what this returns.

``send`` returns an ``Answered`` (a complete answer, validated, with its usage), a
``StreamStarted`` (a stream that reached its first token: the commit point) or an ``UpstreamFailed``
(what went wrong, classified); a cancellation or a bug of ours propagates. Transport errors
become ``UpstreamFailed`` here and nowhere else (``upstream_failure``, which the stream relay
uses too).

Upstreams are untrusted. Redirects are never followed (a 3xx is an invalid response: a provider key
must not travel to another host); no cookies are kept; answers are asked for uncompressed, and one
compressed all the same is inflated in bounded steps; bodies are read up to a bound and within the
attempt's deadlines; a 2xx answer counts only once its dialect has validated it; an error body
reaches the client only with every Secret value the router holds redacted. A stream counts as
started only once its translated bytes carry a token (text, a tool call or a finish), so a stream
that fails before that (an error event after an empty role chunk, silence until the first-token
timeout) still fails over. The upstream response belongs to the exchange until it returns, and to
the stream after a ``StreamStarted``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
import orjson

from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome, retry_after_seconds
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.failures import UpstreamFailed
from signalbox_router.logs import NO_REQUEST, REQUEST_ID
from signalbox_router.metering import estimates

if TYPE_CHECKING:
    from signalbox_router.forwarding.attempts import Attempt
    from signalbox_router.forwarding.deadlines import Deadlines

MAX_ERROR_BODY = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024  # a complete answer (embeddings of a large batch are big)
MAX_HELD = 64 * 1024  # a stream's bytes held before its first token (role chunks, pings)
_FAIL_FAST = frozenset({Outcome.BAD_REQUEST, Outcome.MODEL_NOT_FOUND})


class Answered(NamedTuple):
    """A complete answer, validated: its body for the client and its usage (``estimated``
    when the upstream reported none and the router counted)."""

    body: bytes
    usage: tuple[int, int]
    estimated: bool


class StreamStarted(NamedTuple):
    """A stream at its commit point, with the bytes held until then (``first``); the stream
    now owns ``response``."""

    response: aiohttp.ClientResponse
    translator: dialects.StreamTranslator
    first: bytes


Exchanged = Answered | StreamStarted | UpstreamFailed


def session() -> aiohttp.ClientSession:
    """The upstream client: no redirects (refused per request), no cookie jar."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def send(
    client: aiohttp.ClientSession,
    deadlines: Deadlines,
    attempt: Attempt,
    outbound: dialects.Outbound,
) -> Exchanged:
    """What ``outbound`` came to at ``attempt``'s provider (read, never finished, here)."""
    resp: aiohttp.ClientResponse | None = None
    headers = attempt.prepared.headers
    request_id = REQUEST_ID.get()
    if request_id != NO_REQUEST:  # the upstream's logs (vLLM's, another gateway's) name it too
        headers = headers.copy()
        headers["X-Request-Id"] = request_id
    if attempt.trace is not None:  # an upstream that traces joins the trace
        if headers is attempt.prepared.headers:  # never the shared one
            headers = headers.copy()
        attempt.trace.inject(headers)
    try:
        with deadlines.at(attempt.first_byte_due) as deadline:
            resp = await client.post(
                outbound.url,
                data=outbound.data,
                headers=headers,
                timeout=attempt.prepared.connect,
                allow_redirects=False,
            )
            if not 200 <= resp.status < 300:
                if 300 <= resp.status < 400:
                    resp.close()
                    return UpstreamFailed(
                        Outcome.INVALID_RESPONSE, f"{attempt.name}: redirect refused"
                    )
                deadline.move(attempt.due)
                failure = await _failure(attempt, resp)
                resp.close()  # nothing more is read: the connection goes too
                return failure
            if attempt.job.stream:
                started = await _stream_start(attempt, resp)
                resp = None  # the stream's now
                return started
            deadline.move(attempt.due)  # the rest of an answer may take the request's time
            with INFLATING.share() as share:  # held until the answer was read and checked
                raw = await read_bounded(resp, MAX_ANSWER, share=share)
                answer = attempt.prepared.dialect.answer(attempt.job.kind, raw, attempt.cand.model)
    except BaseException as exc:
        if resp is not None:
            resp.close()
        mapped = upstream_failure(exc, attempt.name)
        if mapped is None:
            raise  # a cancellation, or a bug of ours
        return mapped
    resp.release()
    body = redaction.redact_answer(answer.body, attempt.state.secrets())
    if answer.usage is None:  # the upstream said nothing: the router counts (see estimates)
        usage = estimates.answer_usage(attempt.job.body, body)
        return Answered(body, usage, estimated=True)
    return Answered(body, answer.usage, estimated=False)


def upstream_failure(
    exc: BaseException, name: str, *, timed_out: str = "timed out"
) -> UpstreamFailed | None:
    """The UpstreamFailed a transport or protocol error at provider ``name`` stands for (a
    deadline, aiohttp's own errors, an answer too large, malformed or a stream broken), or None
    for anything else. ``timed_out`` says which deadline passed."""
    if isinstance(exc, TimeoutError):  # a deadline, or aiohttp's for a new connection
        return UpstreamFailed(Outcome.TIMEOUT, f"{name}: {timed_out}")
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamFailed(Outcome.CONNECT_FAILURE, f"{name}: {type(exc).__name__}")
    if isinstance(exc, _TooLarge | dialects.InvalidAnswer | dialects.StreamFailed):
        return UpstreamFailed(Outcome.INVALID_RESPONSE, f"{name}: {exc}")
    return None


class _TooLarge(Exception):
    def __init__(self, limit: int, what: str = "answer") -> None:
        super().__init__(f"{what} over {limit} bytes")


class Inflating:
    """The bytes of compressed answers being inflated and read at once, across every request:
    a provider asked for ``identity`` that compresses all the same gets ``MAX_INFLATED`` an
    answer and a share of ``limit`` for all, so concurrent compression bombs cannot add up."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def share(self) -> Share:
        """One answer's part, for a ``with`` block: given back when the block ends."""
        return Share(self)


class Share:
    """One answer's part of an ``Inflating`` budget, given back when its read is over (a plain
    class, not a generator context manager: every answer takes one)."""

    __slots__ = ("budget", "taken")

    def __init__(self, budget: Inflating) -> None:
        self.budget, self.taken = budget, 0

    def __enter__(self) -> Share:
        return self

    def __exit__(self, *exc: object) -> None:
        self.budget.used -= self.taken

    def take(self, n: int) -> None:
        if self.budget.used + n > self.budget.limit:
            raise _TooLarge(self.budget.limit, "compressed answers inflating at once are")
        self.budget.used += n
        self.taken += n


MAX_INFLATED = 16 * 1024 * 1024  # one compressed answer, inflated
INFLATING = Inflating(64 * 1024 * 1024)  # every compressed answer being read, inflated


async def read_bounded(
    resp: aiohttp.ClientResponse, limit: int, *, cut: bool = False, share: Share | None = None
) -> bytes:
    """The whole body, or ``_TooLarge`` past ``limit`` bytes (with ``cut``, its first ``limit``
    bytes instead). A plain body of a declared length is read in one go; anything else
    (chunked, or inflated from a compressed one) is counted as it arrives, and an inflated one
    is bounded by ``MAX_INFLATED`` and charged to ``share`` (when given) as well."""
    declared = resp.content_length
    compressed = "content-encoding" in resp.headers
    if declared is not None and not compressed:
        if declared <= limit:
            return await resp.read()
        if not cut:
            raise _TooLarge(limit)
    if compressed:
        limit = min(limit, MAX_INFLATED)
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        if compressed and share is not None:
            share.take(len(chunk))
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if not cut:
                raise _TooLarge(limit)
            break
    return b"".join(chunks)[:limit]


async def _failure(attempt: Attempt, resp: aiohttp.ClientResponse) -> UpstreamFailed:
    """The failure an error answer stands for, with the provider's body when it is the
    request's fault (and so goes back to the client)."""
    try:
        raw = await read_bounded(resp, MAX_ERROR_BODY, cut=True)
    except aiohttp.ClientError:
        raw = b""  # the status says enough
    parsed = _json_or_none(redaction.redact(raw, attempt.state.secrets()))
    dialect = attempt.prepared.dialect
    outcome = dialect.classify(resp.status, parsed)
    failure = UpstreamFailed(
        outcome,
        f"{attempt.name}: HTTP {resp.status}",
        upstream_status=resp.status,
        retry_after=retry_after_seconds(resp.headers.get("retry-after")),
        upstream=dialect.error(resp.status, parsed) if outcome in _FAIL_FAST else None,
    )
    failure.names = names(attempt)
    return failure


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")[:1000]


async def _stream_start(attempt: Attempt, resp: aiohttp.ClientResponse) -> StreamStarted:
    """Read and hold the client's bytes until they carry a token (the commit point), still
    inside the first-token deadline: an error event, a malformed event, a cut or silence before
    then is this attempt's failure, and the next candidate is tried. Held bytes are bounded; a
    stream that passes the bound without a token is committed to as it stands."""
    translator = attempt.prepared.dialect.stream(attempt.cand.model, attempt.job.client_usage)
    held: list[bytes] = []
    size = 0
    while not (translator.committed or translator.done) and size <= MAX_HELD:
        data = await resp.content.readany()
        out = translator.feed(data) if data else translator.end()
        if out:
            held.append(out)
            size += len(out)
        if not data and not translator.done:
            raise dialects.StreamFailed("the upstream stream ended before its first token")
    first = redaction.redact_answer(b"".join(held), attempt.state.secrets())
    return StreamStarted(resp, translator, first)


def names(attempt: Attempt) -> replies.HeaderTuple:
    """The headers naming who answered: provider, upstream model, attempt number."""
    return replies.signalbox_headers(attempt.entry.name, attempt.cand.model, attempt.number)
