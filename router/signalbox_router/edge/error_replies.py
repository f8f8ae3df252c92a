"""The one place a request's failure becomes a reply, in the shape of the client's API.

Every route raises; nothing on the request path builds an error reply itself. ``reply_for``
turns any exception into what the client gets: a ``RequestError`` (``signalbox_router.failures``)
into its status and code, a client API's parse error into a 400, anything else (a bug of ours)
into a 500 that says no more than that. Replies are in OpenAI's error shape, on
``/v1/messages`` in Anthropic's. What an upstream said passes on only with every Secret value the
router holds redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import orjson

from signalbox_providers.translate import messages_to_chat
from signalbox_providers.translate.openai_format import InvalidRequest
from signalbox_router import redaction
from signalbox_router.asgi import replies
from signalbox_router.failures import (
    DEFAULT_RETRY_AFTER,
    BadRequest,
    RequestError,
    UpstreamFailed,
    attempts_header,
)

log = logging.getLogger(__name__)
MESSAGES_PATH = "/v1/messages"


def reply_for(exc: Exception, path: str, secrets: Collection[bytes] = ()) -> replies.Reply:
    """What the client of ``path`` gets for ``exc``."""
    error = _as_request_error(exc, path)
    if isinstance(error, UpstreamFailed):
        reply = _upstream_reply(error, secrets)
    else:
        reply = replies.error(
            error.status,
            error.message,
            code=error.code,
            param=error.param,
            retry_after=error.retry_after,
            headers=error.headers,
        )
    return anthropic_reply(reply) if path == MESSAGES_PATH else reply


def _as_request_error(exc: Exception, path: str) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, InvalidRequest):  # a client API's reader refused the body
        return BadRequest(str(exc), param=exc.param)
    log.error("request to %s failed inside the router", path, exc_info=exc)
    return RequestError("The router failed to handle this request.", code="internal")


def _upstream_reply(failure: UpstreamFailed, secrets: Collection[bytes]) -> replies.Reply:
    """The provider's own error when the request was at fault, else ours."""
    if failure.upstream is not None:
        body = redaction.redact(orjson.dumps(failure.upstream), secrets)
        return replies.Reply(failure.status, body, [replies.JSON_TYPE, *failure.names])
    retry_after = None
    if failure.status == 429:
        retry_after = failure.retry_after or DEFAULT_RETRY_AFTER
    message = redaction.redact_text(failure.message, secrets)
    return replies.error(
        failure.status,
        f"upstream failed after {failure.attempts} attempt(s): {message}",
        code=failure.code,
        retry_after=retry_after,
        headers=[attempts_header(failure.attempts)],
    )


def anthropic_reply(reply: replies.Reply) -> replies.Reply:
    """An error reply (OpenAI's shape) in Anthropic's; anything else as it is."""
    if reply.status < 400:
        return reply
    try:
        parsed = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        parsed = None
    body = orjson.dumps(messages_to_chat.from_chat_error(reply.status, parsed))
    return replies.Reply(reply.status, body, reply.headers)
