"""Reading a request at the edge: the body (bounded in size and depth) parsed as JSON, and the
headers the router acts on. Anything wrong raises ``BadRequest`` or ``BodyTooLarge``.

Reading the bytes is the event loop's; parsing them is a step (:func:`parse_json`) the routes
hand to ``off_loop.run`` together with what they do next with the parsed body, so a large body
is worked on off the loop.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from signalbox_router.asgi import nesting
from signalbox_router.asgi.sending import Receive, Scope
from signalbox_router.failures import BadRequest, BodyTooLarge


async def read_body(receive: Receive, max_body: int) -> bytes:
    """The body as sent, at most ``max_body`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # gone (or timed out): nobody to answer
            raise BadRequest("The client went away.", code="disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge(f"Request body exceeds {max_body} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The body parsed; BadRequest when it is not JSON or nests too deeply."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from exc
    if nesting.too_deep(raw, parsed):
        raise BadRequest(f"The JSON body nests deeper than {nesting.MAX_DEPTH} levels.")
    return parsed


def header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


def tenant(scope: Scope) -> str:
    """Whose client key the request carries, as a digest that names it in usage without being
    it (the same key, the same tenant, on every replica)."""
    return hashlib.sha256(b"signalbox-tenant\0" + client_key(scope)).hexdigest()[:16]


def client_key(scope: Scope) -> bytes:
    """The API key the client presented: a Bearer token (the scheme's name is case-insensitive,
    RFC 9110, section 11.1) or else ``x-api-key`` (the Anthropic SDK's way)."""
    scheme, _, token = header(scope, b"authorization").partition(b" ")
    if scheme.lower() == b"bearer":
        return token.strip()
    return header(scope, b"x-api-key").strip()
