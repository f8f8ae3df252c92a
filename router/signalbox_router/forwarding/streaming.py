"""Relays one upstream stream to the client, once its first bytes exist (``exchange``).

Each read is translated (and so validated) before any of it reaches the client. A stream cut,
malformed or gone silent upstream ends with an OpenAI-style error event and never with
``[DONE]``; once the first byte reached the client nothing is retried. The attempt the stream
took over is booked when the stream ends, however it ends: a client that goes away closes the
upstream at once and is booked as the client's cancellation, not the provider's failure. A
stream whose upstream sent no usage is booked with the router's own estimate (``estimates``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from signalbox_providers import dialects
from signalbox_providers.outcomes import Outcome
from signalbox_providers.streams import sse
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.forwarding.failures import UpstreamFailed
from signalbox_router.metering import estimates

if TYPE_CHECKING:
    from signalbox_router.forwarding.attempts import Attempt
    from signalbox_router.forwarding.deadlines import Deadlines

log = logging.getLogger(__name__)


async def relay(
    deadlines: Deadlines,
    attempt: Attempt,
    resp: aiohttp.ClientResponse,
    translator: dialects.StreamTranslator,
    first: bytes,
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; book the attempt as the stream ends."""
    idle = attempt.prepared.stream_idle
    try:
        yield first
        while not translator.done:
            with deadlines.at(min(time.monotonic() + idle, attempt.due)):
                data = await resp.content.readany()
            out = translator.feed(data) if data else translator.end()
            if out:
                yield out
            if not data:
                break
        usage = translator.usage
        if usage is None:
            attempt.succeeded(_estimate(attempt, translator), estimated=True)
        else:
            attempt.succeeded(usage)
    except (TimeoutError, aiohttp.ClientError, dialects.StreamFailed) as exc:
        failure = _failure(exc, attempt)
        usage = translator.usage
        if usage is None:
            attempt.failed(failure, _estimate(attempt, translator), estimated=True)
        else:
            attempt.failed(failure, usage)
        message = redaction.redact_text(failure.message, attempt.state.secrets())
        yield sse(replies.error_body(502, message, code="upstream_stream_error"))
    except Exception as exc:  # a bug of ours: the client still learns that the stream failed
        log.exception("a stream from %s failed inside the router", attempt.entry.name)
        attempt.close(exc)
        yield sse(
            replies.error_body(500, "The router failed to relay this stream.", code="internal")
        )
    finally:
        attempt.close()  # a client gone, a cancellation: nothing was booked yet


def _estimate(attempt: Attempt, translator: dialects.StreamTranslator) -> tuple[int, int]:
    body = attempt.job.body
    return estimates.estimated_usage(body, translator.text_chars, translator.text_chunks)


def _failure(exc: BaseException, attempt: Attempt) -> UpstreamFailed:
    name = attempt.entry.name
    said = "upstream stream failed"
    if isinstance(exc, TimeoutError):
        if time.monotonic() >= attempt.due:
            return UpstreamFailed(Outcome.TIMEOUT, f"{said}: {name}: the request timeout passed")
        return UpstreamFailed(
            Outcome.TIMEOUT, f"{said}: {name}: no data within the stream idle timeout"
        )
    if isinstance(exc, dialects.StreamFailed):
        return UpstreamFailed(Outcome.SERVER_ERROR, f"{said}: {name}: {exc}")
    return UpstreamFailed(Outcome.CONNECT_FAILURE, f"{said}: {name}: the connection broke")
