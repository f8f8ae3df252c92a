"""Reads an incoming OpenAI request: checks its shape and derives what it needs of a model.

Capabilities come from the body itself: tools → ``tools``, image parts → ``vision``,
``response_format`` → ``jsonMode`` / ``jsonSchema``, ``stream`` → ``streaming``; chat
requests need ``chat``, embedding requests ``embeddings``. The prompt size is estimated at
about four characters a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signalbox_api.provider import Capability
from signalbox_providers.dialects import Kind
from signalbox_router.asgi import request_reading
from signalbox_router.failures import BadRequest
from signalbox_router.routing.selection import Needs

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class InvalidRequest(BadRequest):
    """The body is not a valid request; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param)


def read(raw: bytes, kind: Kind) -> tuple[dict[str, Any], Needs]:
    """The body parsed and checked, and what it needs of a model: one step, which a large body
    takes off the event loop (``off_loop``)."""
    body = validate(request_reading.parse_json(raw), kind)
    return body, needs(body, kind)


def validate(body: Any, kind: Kind) -> dict[str, Any]:
    """The body as a dict if it has the fields the router relies on; else InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", "model")
    if kind == "chat":
        _validate_chat(body)
    else:
        raw = body.get("input")
        if not isinstance(raw, str | list) or not raw:
            raise InvalidRequest("'input' must be a string or a non-empty array.", "input")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", "stream_options")
    return body


def _validate_chat(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", "messages")
    for i, msg in enumerate(messages):
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("role"), str)
            or msg["role"] not in _ROLES
        ):
            raise InvalidRequest(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidRequest(f"'{key}' must be a positive integer.", key)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", "tools")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequest("'stop' must be a string or an array of strings.", "stop")


_IMAGE_PARTS = frozenset({"image_url", "input_image"})


def _scan(messages: Any) -> tuple[int, bool]:
    """Characters of text in ``messages``, and whether any message carries an image."""
    chars, images = 0, False
    for m in messages if isinstance(messages, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                text = part.get("text")
                if isinstance(text, str):
                    chars += len(text)
                kind = part.get("type")
                images = images or (isinstance(kind, str) and kind in _IMAGE_PARTS)
    return chars, images


def needs(body: Mapping[str, Any], kind: Kind) -> Needs:
    """What a model must offer to serve ``body``."""
    if kind == "embeddings":
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else [x for x in raw or [] if isinstance(x, str)]
        return Needs(frozenset({Capability.EMBEDDINGS}), sum(len(t) for t in texts) // 4)
    caps = {Capability.CHAT}
    chars, images = _scan(body.get("messages"))
    if body.get("tools"):
        caps.add(Capability.TOOLS)
    if images:
        caps.add(Capability.VISION)
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            caps.add(Capability.JSON_MODE)
        elif fmt.get("type") == "json_schema":
            caps.add(Capability.JSON_SCHEMA)
    if body.get("stream"):
        caps.add(Capability.STREAMING)
    return Needs(frozenset(caps), chars // 4)
