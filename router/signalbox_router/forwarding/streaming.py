"""Relays one upstream stream to the client, from its commit point on (``exchange``).

Each read is translated (and so validated) before any of it reaches the client. A stream cut,
malformed or gone silent upstream ends with an OpenAI-style error event and never with
``[DONE]``; past the commit point (the first token) nothing is retried. However the stream ends,
``on_end`` hears it once, with the attempt's ``Report``: a client that goes away closes the
upstream at once and is reported as the client's cancellation, not the provider's failure. A
stream whose upstream sent no usage is reported with the router's own estimate (``estimates``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from signalbox_providers import dialects
from signalbox_providers.streams import sse
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.forwarding.attempts import Report
from signalbox_router.forwarding.exchange import StreamStarted, upstream_failure
from signalbox_router.metering import estimates

if TYPE_CHECKING:
    from signalbox_router.forwarding.deadlines import Deadlines

log = logging.getLogger(__name__)
_SAID = "upstream stream failed"


class Watch(NamedTuple):
    """What a relay keeps to: the provider's name, its idle timeout, the attempt's deadline,
    the request's body (for a usage estimate) and the secrets to mask in every event."""

    name: str
    idle: float
    due: float
    body: dict[str, Any]
    secrets: tuple[bytes, ...]


async def relay(
    deadlines: Deadlines,
    started: StreamStarted,
    watch: Watch,
    on_end: Callable[[Report], None],
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; tell ``on_end`` how the stream ended."""
    translator, resp = started.translator, started.response
    clean = False
    try:
        yield started.first
        while not translator.done:
            with deadlines.at(min(time.monotonic() + watch.idle, watch.due)):
                data = await resp.content.readany()
            out = translator.feed(data) if data else translator.end()
            if out:
                yield redaction.redact_answer(out, watch.secrets)
            if not data:
                break
        usage = translator.usage
        if usage is None:
            on_end(Report.success(_estimate(watch, translator), estimated=True))
        else:
            on_end(Report.success(usage))
        clean = True
    except Exception as exc:
        failure = upstream_failure(exc, watch.name, timed_out=_timed_out(watch))
        if failure is None:  # a bug of ours: the client still learns that the stream failed
            log.exception("a stream from %s failed inside the router", watch.name)
            on_end(Report.interrupted(exc))
            error = replies.error_body(
                500, "The router failed to relay this stream.", code="internal"
            )
            yield sse(error)
            return
        usage, estimated = translator.usage, False
        if usage is None:
            usage, estimated = _estimate(watch, translator), True
        on_end(Report.failed(failure, usage, estimated=estimated))
        message = redaction.redact_text(f"{_SAID}: {failure.message}", watch.secrets)
        yield sse(replies.error_body(502, message, code="upstream_stream_error"))
    finally:
        on_end(Report.interrupted(None))  # a client gone, a cancellation: nothing told yet
        if clean:
            resp.release()
        else:
            resp.close()


def _timed_out(watch: Watch) -> str:
    if time.monotonic() >= watch.due:
        return "the request timeout passed"
    return "no data within the stream idle timeout"


def _estimate(watch: Watch, translator: dialects.StreamTranslator) -> tuple[int, int]:
    return estimates.estimated_usage(watch.body, translator.text_chars, translator.text_chunks)
