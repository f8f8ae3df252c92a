"""The router's internal (OpenAI chat) answers as Anthropic Messages answers: a complete
``message``, and error bodies in Anthropic's shape (``{"type": "error", "error": {...}}``).

Finish reasons map back as ``translate.anthropic`` maps them forward: stop -> end_turn,
length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal. A chat answer does not
say which stop sequence matched, so ``stop_sequence`` stays null on translated answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from signalbox_providers.translate.openai_format import JSON, new_id

STOP_REASONS = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "refusal",
    }
)

# HTTP status -> Anthropic error type (its documented errors).
_ERROR_TYPES = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)


def stop_reason(finish: Any) -> str:
    return STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def usage(chat_usage: Any) -> JSON:
    """Anthropic's usage for an OpenAI usage object (cached input split out, as Anthropic
    counts it apart)."""
    u = chat_usage if isinstance(chat_usage, Mapping) else {}
    details = u.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    prompt = _int(u.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(u.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def message_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix("chatcmpl-").removeprefix("msg_")
    return new_id("msg_")


def _arguments(raw: Any, cut: bool) -> Any:
    """A tool call's input. Arguments cut off with the answer (``finish_reason: length``) are
    no JSON: the call then has no input rather than failing the answer."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        if cut:
            return {}
        raise


def from_chat(body: Mapping[str, Any]) -> JSON:
    """The Anthropic ``message`` for a ``chat.completion`` body. Raises ValueError, TypeError
    or AttributeError when the body is not one (the caller treats that as a bad answer)."""
    choice = body["choices"][0]
    msg = choice["message"]
    content: list[JSON] = []
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    cut = choice.get("finish_reason") == "length"
    for call in msg.get("tool_calls") or []:
        function = call["function"]
        value = _arguments(function.get("arguments") or "{}", cut)
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or new_id("toolu_")),
                "name": str(function["name"]),
                "input": value if isinstance(value, dict) else {},
            }
        )
    return {
        "id": message_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage(body.get("usage")),
    }


def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str) -> JSON:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def from_chat_error(status: int, body: Any) -> JSON:
    """An error body (OpenAI's shape, or already Anthropic's) in Anthropic's shape."""
    if isinstance(body, Mapping) and body.get("type") == "error":
        return dict(body)
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return error_body(status, message if isinstance(message, str) else f"HTTP {status}")
