"""OpenAI Chat Completions <-> Ollama's native ``/api/chat``, so the router can front Ollama.

Ollama also serves an OpenAI-compatible ``/v1``, but the native API is the one that reports
``done_reason`` and token counts on every build and takes ``options`` and ``format`` directly.
The request goes there through :mod:`signalbox_providers.translate.ollama_request`
(``to_ollama``, re-exported here); this module brings the answer back:

* Tool call arguments are JSON objects on Ollama, JSON strings on OpenAI. Ollama calls may carry
  no id; the translation generates ``call_...`` ids.
* Streams are NDJSON objects, each a whole message fragment; tool calls arrive complete, so each
  becomes a single chunk carrying id, name and all its arguments.
* Token counts come from ``prompt_eval_count`` and ``eval_count``; errors become OpenAI-shaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from signalbox_providers.translate.ollama_request import to_ollama
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
    "OllamaStream",
    "UpstreamStreamError",
    "error_to_openai",
    "from_ollama",
    "to_ollama",
]


def _usage(body: Mapping[str, Any]) -> TokenUsage:
    """Checked counts (ValueError: see ``token_count``)."""
    return TokenUsage(
        token_count(body.get("prompt_eval_count")), token_count(body.get("eval_count"))
    )


def _finish_reason(body: Mapping[str, Any], called_tools: bool) -> str:
    if called_tools:
        return "tool_calls"
    return "length" if body.get("done_reason") == "length" else "stop"


def _tool_call_in(call: Any) -> JSON:
    """An Ollama tool call as OpenAI's, with a generated id when Ollama sent none."""
    function = call.get("function") if isinstance(call, Mapping) else None
    function = function if isinstance(function, Mapping) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {}, separators=(",", ":"), ensure_ascii=False)
    call_id = call.get("id") if isinstance(call, Mapping) else None
    call_id = call_id if isinstance(call_id, str) and call_id else new_id("call_")
    return tool_call(call_id, str(function.get("name", "")), arguments)


def _message_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    message = body.get("message")
    return message if isinstance(message, Mapping) else {}


def from_ollama(body: Mapping[str, Any], model: str, *, created: int | None = None) -> JSON:
    """A non-streamed ``/api/chat`` answer as an OpenAI ``chat.completion`` for ``model``."""
    message = _message_of(body)
    calls = [_tool_call_in(c) for c in message.get("tool_calls") or []]
    return completion_body(
        cid=new_id("chatcmpl-"),
        created=now() if created is None else created,
        model=model,
        message=assistant_message(str(message.get("content") or ""), calls),
        finish_reason=_finish_reason(body, bool(calls)),
        usage=usage_body(_usage(body)),
    )


class OllamaStream:
    """Turns the NDJSON objects of one streamed ``/api/chat`` into OpenAI chunk payloads."""

    def __init__(self, model: str, include_usage: bool, *, created: int | None = None) -> None:
        created = now() if created is None else created
        self._out = ChunkWriter(model, include_usage, cid=new_id("chatcmpl-"), created=created)
        self._calls = 0
        self.usage: TokenUsage | None = None
        self.done = False

    def feed(self, obj: Mapping[str, Any]) -> list[JSON]:
        """The chunks one NDJSON object produces. Raises UpstreamStreamError on ``error``."""
        if "error" in obj:
            raise UpstreamStreamError(str(obj["error"]))
        if self.done:
            return []
        message = _message_of(obj)
        out = self._out.content(str(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            converted = _tool_call_in(call)
            function = converted["function"]
            out += self._out.tool_call_start(
                self._calls, converted["id"], function["name"], function["arguments"]
            )
            self._calls += 1
        if obj.get("done"):
            self.done = True
            self.usage = _usage(obj)
            reason = _finish_reason(obj, self._calls > 0)
            out += self._out.finish(reason, usage_body(self.usage))
        return out


def error_to_openai(status: int, body: Any) -> JSON:
    """An Ollama error response (``{"error": "..."}``) as OpenAI's error body."""
    message = body.get("error") if isinstance(body, Mapping) else body
    if not isinstance(message, str) or not message.strip():
        message = f"Ollama returned HTTP {status}"
    kind, code = kind_for_status(status)
    return error_body(message.strip()[:1000], kind, code)
