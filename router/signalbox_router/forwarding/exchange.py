"""One HTTP exchange with one provider: send, then read and judge the answer, and say what it
came to. It books nothing: the failover loop finishes the attempt with what this returns.

``send`` returns an ``Answered`` (a complete answer, validated, with its usage), a
``StreamStarted`` (a stream whose first bytes for the client exist) or an ``UpstreamFailed``
(what went wrong, classified); a cancellation or a bug of ours propagates. Transport errors
become ``UpstreamFailed`` here and nowhere else (``upstream_failure``, which the stream relay
uses too).

Upstreams are untrusted. Redirects are never followed (a 3xx is an invalid response: a
provider key must not travel to another host); no cookies are kept; answers are asked for
uncompressed, and one compressed all the same is inflated in bounded steps; bodies are read up
to a bound and within the attempt's deadlines; a 2xx answer counts only once its dialect has
validated it; an error body reaches the client only with every Secret value the router holds
redacted. A stream counts as started only once its first translated bytes exist, so a stream
that fails before that still fails over. The upstream response belongs to the exchange until it
returns, and to the stream after a ``StreamStarted``.
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
from signalbox_router.metering import estimates

if TYPE_CHECKING:
    from signalbox_router.forwarding.attempts import Attempt
    from signalbox_router.forwarding.deadlines import Deadlines

MAX_ERROR_BODY = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024  # a complete answer (embeddings of a large batch are big)
_FAIL_FAST = frozenset({Outcome.BAD_REQUEST, Outcome.MODEL_NOT_FOUND})


class Answered(NamedTuple):
    """A complete answer, validated: its body for the client and its usage (``estimated``
    when the upstream reported none and the router counted)."""

    body: bytes
    usage: tuple[int, int]
    estimated: bool


class StreamStarted(NamedTuple):
    """A stream whose first bytes for the client exist; the stream now owns ``response``."""

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
    try:
        with deadlines.at(attempt.first_byte_due) as deadline:
            resp = await client.post(
                outbound.url,
                data=outbound.data,
                headers=attempt.prepared.headers,
                timeout=attempt.prepared.connect,
                allow_redirects=False,
            )
            if 300 <= resp.status < 400:
                resp.close()
                return UpstreamFailed(Outcome.INVALID_RESPONSE, f"{attempt.name}: redirect refused")
            if resp.status >= 400 or resp.status < 200:
                deadline.move(attempt.due)
                failure = await _failure(attempt, resp)
                resp.close()  # nothing more is read: the connection goes too
                return failure
            if attempt.job.stream:
                started = await _stream_start(attempt, resp)
                resp = None  # the stream's now
                return started
            deadline.move(attempt.due)  # the rest of an answer may take the request's time
            raw = await read_bounded(resp, MAX_ANSWER)
        answer = attempt.prepared.dialect.answer(attempt.job.kind, raw, attempt.cand.model)
    except BaseException as exc:
        if resp is not None:
            resp.close()
        mapped = upstream_failure(exc, attempt.name)
        if mapped is None:
            raise  # a cancellation, or a bug of ours
        return mapped
    resp.release()
    if answer.usage is None:  # the upstream said nothing: the router counts (see estimates)
        usage = estimates.answer_usage(attempt.job.body, answer.body)
        return Answered(answer.body, usage, estimated=True)
    return Answered(answer.body, answer.usage, estimated=False)


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
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer over {limit} bytes")


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, *, cut: bool = False) -> bytes:
    """The whole body, or ``_TooLarge`` past ``limit`` bytes (with ``cut``, its first ``limit``
    bytes instead). A plain body of a declared length is read in one go; anything else
    (chunked, or inflated from a compressed one) is counted as it arrives."""
    declared = resp.content_length
    if declared is not None and "content-encoding" not in resp.headers:
        if declared <= limit:
            return await resp.read()
        if not cut:
            raise _TooLarge(limit)
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
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
    """Read until the first bytes for the client exist (still inside the first-token
    deadline)."""
    translator = attempt.prepared.dialect.stream(attempt.cand.model, attempt.job.client_usage)
    first = b""
    while not first:
        data = await resp.content.readany()
        first = translator.feed(data) if data else translator.end()
        if not data and not first:
            raise dialects.StreamFailed("the upstream stream was empty")
    return StreamStarted(resp, translator, first)


def names(attempt: Attempt) -> replies.HeaderTuple:
    """The headers naming who answered: provider, upstream model, attempt number."""
    return replies.signalbox_headers(attempt.entry.name, attempt.cand.model, attempt.number)
