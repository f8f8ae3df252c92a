"""One HTTP exchange with one provider, inside an attempt: send, then read and judge the answer.

Upstreams are untrusted. Redirects are never followed (a 3xx is an invalid response: a
provider key must not travel to another host); no cookies are kept; answers are asked for
uncompressed, and one compressed all the same is inflated in bounded steps; bodies are read up
to a bound and within the attempt's deadlines; a 2xx answer counts only once its dialect has
validated it; an error body reaches the client only with every Secret value the router holds
redacted. A stream counts as started only once its first translated bytes exist, so a stream
that fails before that still fails over.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome, retry_after_seconds
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.forwarding import streaming
from signalbox_router.forwarding.attempts import Attempt
from signalbox_router.forwarding.failures import UpstreamFailed
from signalbox_router.metering import estimates

if TYPE_CHECKING:
    from signalbox_router.forwarding.deadlines import Deadlines

MAX_ERROR_BODY = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024  # a complete answer (embeddings of a large batch are big)
_FAIL_FAST = frozenset({Outcome.BAD_REQUEST, Outcome.MODEL_NOT_FOUND})


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
) -> replies.Reply | replies.StreamReply:
    """The answer to ``outbound`` as the client's reply. Raises UpstreamFailed; whatever ends
    the exchange, the attempt books it (a stream's reply takes the attempt over)."""
    name = attempt.entry.name
    try:
        with deadlines.at(attempt.first_byte_due) as deadline:
            attempt.response = resp = await client.post(
                outbound.url,
                data=outbound.data,
                headers=attempt.prepared.headers,
                timeout=attempt.prepared.connect,
                allow_redirects=False,
            )
            if 300 <= resp.status < 400:
                raise UpstreamFailed(Outcome.INVALID_RESPONSE, f"{name}: redirect refused")
            if resp.status >= 400 or resp.status < 200:
                deadline.move(attempt.due)
                raise await _failure(attempt, resp)
            if attempt.job.stream:
                return await _stream(deadlines, attempt, resp)
            deadline.move(attempt.due)  # the rest of an answer may take the request's time
            raw = await read_bounded(resp, MAX_ANSWER)
    except TimeoutError as exc:  # a deadline, or aiohttp's for a new connection
        raise UpstreamFailed(Outcome.TIMEOUT, f"{name}: timed out") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailed(Outcome.CONNECT_FAILURE, f"{name}: {type(exc).__name__}") from exc
    except _TooLarge as exc:
        raise UpstreamFailed(Outcome.INVALID_RESPONSE, f"{name}: {exc}") from exc
    try:
        answer = attempt.prepared.dialect.answer(attempt.job.kind, raw, attempt.cand.model)
    except dialects.InvalidAnswer as exc:
        raise UpstreamFailed(Outcome.INVALID_RESPONSE, f"{name}: {exc}") from exc
    if answer.usage is None:  # the upstream said nothing: the router counts (see estimates)
        attempt.succeeded(estimates.answer_usage(attempt.job.body, answer.body), estimated=True)
    else:
        attempt.succeeded(answer.usage)
    return replies.Reply(200, answer.body, [replies.JSON_TYPE, *_names(attempt)])


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
    message = f"{attempt.entry.name}: HTTP {resp.status}"
    retry_after = retry_after_seconds(resp.headers.get("retry-after"))
    upstream = dialect.error(resp.status, parsed) if outcome in _FAIL_FAST else None
    failure = UpstreamFailed(
        outcome,
        message,
        upstream_status=resp.status,
        retry_after=retry_after,
        upstream=upstream,
    )
    failure.names = _names(attempt)
    return failure


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")[:1000]


async def _stream(
    deadlines: Deadlines, attempt: Attempt, resp: aiohttp.ClientResponse
) -> replies.StreamReply:
    """Read until the first bytes for the client exist (still inside the first-token
    deadline), then hand the attempt to the stream."""
    translator = attempt.prepared.dialect.stream(attempt.cand.model, attempt.job.client_usage)
    name = attempt.entry.name
    first = b""
    try:
        while not first:
            data = await resp.content.readany()
            first = translator.feed(data) if data else translator.end()
            if not data and not first:
                raise dialects.StreamFailed("the upstream stream was empty")
    except dialects.StreamFailed as exc:
        raise UpstreamFailed(Outcome.INVALID_RESPONSE, f"{name}: {exc}") from exc
    attempt.state.meter.first_token(
        attempt.job.route.model, name, time.monotonic() - attempt.started
    )
    chunks = streaming.relay(deadlines, attempt.hand_over(), resp, translator, first)
    headers = [*replies.STREAM_HEADERS, *_names(attempt)]
    return replies.StreamReply(chunks, headers, attempt.close, usage=lambda: translator.usage)


def _names(attempt: Attempt) -> replies.HeaderTuple:
    return replies.signalbox_headers(attempt.entry.name, attempt.cand.model, attempt.number)
