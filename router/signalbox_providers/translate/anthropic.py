"""OpenAI Chat Completions <-> Anthropic Messages API, so the router can front Claude.

Requests go through ``to_anthropic`` (in ``anthropic_request``); responses, streams and errors
come back through ``from_anthropic``, ``AnthropicStream`` and ``error_to_openai``. The response
side maps Anthropic's stop reasons and token counts onto OpenAI's (cache reads and writes count
as prompt tokens, as OpenAI counts cached input), and turns the Messages event stream into the
chunk sequence an OpenAI client expects: a role chunk, content and tool-call deltas, a closing
chunk with the finish reason and, when ``stream_options.include_usage`` was set, a usage chunk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from signalbox_providers.sse import SseEvent
from signalbox_providers.translate.anthropic_request import to_anthropic
from signalbox_providers.translate.openai_format import (
    JSON,
    ChunkWriter,
    TokenUsage,
    UpstreamStreamError,
    assistant_message,
    completion_body,
    error_body,
    kind_for_status,
    new_id,
    now,
    token_count,
    tool_call,
    usage_body,
)

__all__ = [
    "AnthropicStream",
    "UpstreamStreamError",
    "error_to_openai",
    "from_anthropic",
    "to_anthropic",
]

_FINISH_REASONS = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)

# Anthropic error type -> OpenAI (type, code).
_ERROR_KINDS = MappingProxyType(
    {
        "invalid_request_error": ("invalid_request_error", None),
        "authentication_error": ("invalid_request_error", "invalid_api_key"),
        "permission_error": ("invalid_request_error", "permission_denied"),
        "billing_error": ("insufficient_quota", "insufficient_quota"),
        "not_found_error": ("invalid_request_error", "model_not_found"),
        "request_too_large": ("invalid_request_error", "request_too_large"),
        "rate_limit_error": ("requests", "rate_limit_exceeded"),
        "api_error": ("server_error", None),
        "overloaded_error": ("server_error", "overloaded"),
        "timeout_error": ("server_error", "timeout"),
        "gateway_timeout_error": ("server_error", "timeout"),
    }
)


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _index(value: Any) -> int:
    return value if type(value) is int else 0


_INPUT = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_COUNTS = (*_INPUT, "output_tokens")


def _counts(usage: Mapping[str, Any]) -> dict[str, int]:
    """The token counts of a usage object, checked (ValueError: see ``token_count``)."""
    return {key: token_count(usage.get(key)) for key in _COUNTS}


def _prompt_tokens(counts: Mapping[str, int]) -> int:
    """Anthropic splits input into uncached, cache-write and cache-read; OpenAI sums them."""
    return sum(counts[key] for key in _INPUT)


def _usage(usage: Mapping[str, Any]) -> JSON:
    counts = _counts(usage)
    tokens = TokenUsage(_prompt_tokens(counts), counts["output_tokens"])
    return usage_body(tokens, cached=counts["cache_read_input_tokens"])


def from_anthropic(body: Mapping[str, Any], model: str, *, created: int | None = None) -> JSON:
    """An Anthropic ``message`` as an OpenAI ``chat.completion`` for ``model`` (the client's name).

    Thinking and server-tool blocks have no OpenAI counterpart and are left out.
    """
    blocks = [b for b in body.get("content") or [] if isinstance(b, Mapping)]
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = [_tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    usage = body.get("usage")
    return completion_body(
        cid=_completion_id(body.get("id")),
        created=now() if created is None else created,
        model=model,
        message=assistant_message(text, calls),
        finish_reason=_finish_reason(body.get("stop_reason")),
        usage=_usage(usage if isinstance(usage, Mapping) else {}),
    )


def _tool_call(block: Mapping[str, Any]) -> JSON:
    value = block.get("input")
    arguments = json.dumps(
        {} if value is None else value, separators=(",", ":"), ensure_ascii=False
    )
    return tool_call(
        str(block.get("id") or new_id("toolu_")), str(block.get("name", "")), arguments
    )


def _completion_id(message_id: Any) -> str:
    """Keeps Anthropic's message id inside the OpenAI one, so logs on both sides line up."""
    return f"chatcmpl-{message_id}" if isinstance(message_id, str) else new_id("chatcmpl-")


class AnthropicStream:
    """Turns the events of one Anthropic Messages stream into OpenAI chunk payloads."""

    def __init__(self, model: str, include_usage: bool, *, created: int | None = None) -> None:
        self._out = ChunkWriter(
            model,
            include_usage,
            cid=new_id("chatcmpl-"),
            created=now() if created is None else created,
        )
        self._usage: dict[str, int] | None = None  # checked counts, from message_start on
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._tool_has_args: dict[int, bool] = {}
        self._stop_reason: Any = None
        self.done = False

    @property
    def usage(self) -> TokenUsage | None:
        """Prompt and completion tokens so far; None before ``message_start``."""
        if self._usage is None:
            return None
        return TokenUsage(_prompt_tokens(self._usage), self._usage["output_tokens"])

    def feed(self, event: SseEvent) -> list[JSON]:
        """The chunks ``event`` produces (often none). Raises UpstreamStreamError on ``error``."""
        return [] if self.done else self.take(event.event, event_payload(event))

    def take(self, name: str | None, payload: Mapping[str, Any]) -> list[JSON]:
        """``feed`` for an event whose data was already read (``event_payload``)."""
        if self.done:
            return []
        kind = payload.get("type", name)
        if kind == "error":
            raise _stream_error(payload)
        if kind == "message_start":
            return self._message_start(payload)
        if kind == "content_block_start":
            return self._block_start(_index(payload.get("index")), payload.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(_index(payload.get("index")), payload.get("delta"))
        if kind == "content_block_stop":
            return self._block_stop(_index(payload.get("index")))
        if kind == "message_delta":
            self._message_delta(payload)
        elif kind == "message_stop":
            self.done = True
            return self._out.finish(_finish_reason(self._stop_reason), _usage(self._usage or {}))
        return []  # ping, and event types added after this was written

    def _message_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        message = payload.get("message")
        if isinstance(message, Mapping):
            if isinstance(message.get("id"), str):
                self._out.cid = _completion_id(message["id"])
            usage = message.get("usage")
            self._usage = _counts(usage) if isinstance(usage, Mapping) and usage else None
        return self._out.start()

    def _block_start(self, index: int, block: Any) -> list[JSON]:
        if not isinstance(block, Mapping):
            return []
        if block.get("type") == "text":
            return self._out.content(str(block.get("text") or ""))
        if block.get("type") != "tool_use":
            return []  # thinking and server-tool blocks have no OpenAI counterpart
        call_index = self._tools[index] = len(self._tools)
        self._tool_has_args[index] = False
        call_id = str(block.get("id") or new_id("toolu_"))
        return self._out.tool_call_start(call_index, call_id, str(block.get("name", "")), "")

    def _block_delta(self, index: int, delta: Any) -> list[JSON]:
        if not isinstance(delta, Mapping):
            return []
        if delta.get("type") == "text_delta":
            return self._out.content(str(delta.get("text") or ""))
        fragment = delta.get("partial_json")
        if delta.get("type") != "input_json_delta" or index not in self._tools or not fragment:
            return []
        self._tool_has_args[index] = True
        return self._out.tool_arguments(self._tools[index], str(fragment))

    def _block_stop(self, index: int) -> list[JSON]:
        """A tool called with no input streams no JSON at all; OpenAI clients expect ``{}``."""
        if index in self._tools and not self._tool_has_args[index]:
            return self._out.tool_arguments(self._tools[index], "{}")
        return []

    def _message_delta(self, payload: Mapping[str, Any]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
            self._stop_reason = delta["stop_reason"]
        usage = payload.get("usage")
        if isinstance(usage, Mapping):  # counts here are cumulative: they replace, not add
            given = {k: token_count(v) for k, v in usage.items() if k in _COUNTS and v is not None}
            if given:
                self._usage = {**(self._usage or _counts({})), **given}


def event_payload(event: SseEvent) -> Mapping[str, Any]:
    """An event's data as a JSON object; UpstreamStreamError when it is not one."""
    try:
        payload = json.loads(event.data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise UpstreamStreamError("malformed event data: not JSON") from exc
    if not isinstance(payload, Mapping):
        raise UpstreamStreamError("event data is not a JSON object")
    return payload


def _stream_error(payload: Mapping[str, Any]) -> UpstreamStreamError:
    error = payload.get("error")
    error = error if isinstance(error, Mapping) else {}
    message = error.get("message")
    kind = error.get("type")
    return UpstreamStreamError(
        message if isinstance(message, str) else "Anthropic stream error",
        kind if isinstance(kind, str) else None,
    )


def error_to_openai(status: int, body: Any) -> JSON:
    """An Anthropic error response (``{"type": "error", "error": {...}}``) as OpenAI's body.

    ``body`` may be anything a failed request returned: parsed JSON, raw text, or None.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = body.strip()[:1000] if isinstance(body, str) and body.strip() else ""
    kind, code = _ERROR_KINDS.get(str(error.get("type")), kind_for_status(status))
    return error_body(message or f"Anthropic returned HTTP {status}", kind, code)
