"""What the router answers: complete replies and streams, and errors in the OpenAI shape."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[bytes, bytes]]
HeaderTuple = tuple[tuple[bytes, bytes], ...]
JSON_TYPE = (b"content-type", b"application/json")
STREAM_HEADERS = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout",
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Headers = field(default_factory=list)


def _nothing_to_close() -> None:
    return None


def _no_usage() -> tuple[int, int] | None:
    return None


@dataclass
class StreamReply:
    """A stream and its owner's ``close``, which the server calls however sending ends (even
    when the stream was never started, so its ``finally`` never ran). ``usage``: the prompt and
    completion tokens the upstream reported, once the stream ended (the client may not see
    them: it did not ask)."""

    chunks: AsyncIterator[bytes]
    headers: Headers = field(default_factory=list)
    close: Callable[[], None] = _nothing_to_close
    status: int = 200
    usage: Callable[[], tuple[int, int] | None] = _no_usage


@functools.lru_cache(maxsize=4096)
def signalbox_headers(provider: str, model: str, attempts: int) -> HeaderTuple:
    """The headers naming who answered; the same few combinations come back all the time."""
    return (
        (b"x-signalbox-provider", provider.encode()),
        (b"x-signalbox-model", model.encode()),
        (b"x-signalbox-attempts", str(attempts).encode()),
    )


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "api_error"),
            "param": param,
            "code": code,
        }
    }


def error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Reply:
    out: Headers = [JSON_TYPE, *headers]
    if retry_after is not None:
        out.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    body = json.dumps(error_body(status, message, code=code, param=param)).encode()
    return Reply(status, body, out)


def json_reply(
    payload: Any, status: int = 200, headers: Sequence[tuple[bytes, bytes]] = ()
) -> Reply:
    return Reply(status, json.dumps(payload).encode(), [JSON_TYPE, *headers])
