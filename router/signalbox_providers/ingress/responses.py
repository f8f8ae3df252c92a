"""The router's internal (OpenAI chat) answers as OpenAI Responses objects.

A chat answer becomes a ``response`` whose ``output`` holds a ``message`` item (one
``output_text`` part) and one ``function_call`` item per tool call; a chat answer cut by its
token limit is an ``incomplete`` response (``max_output_tokens``). The request's own settings
(instructions, tools, tool choice, text format) are echoed as OpenAI echoes them. Nothing is
stored: ``store`` is always false. Errors keep OpenAI's shape, as the Responses API's do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from signalbox_providers.translate.openai_format import JSON, new_id


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def usage(chat_usage: Any) -> JSON:
    u = chat_usage if isinstance(chat_usage, Mapping) else {}
    details = u.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    prompt, completion = _int(u.get("prompt_tokens")), _int(u.get("completion_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return "resp_" + chat_id.removeprefix("chatcmpl-")
    return new_id("resp_")


def message_item(text: str, item_id: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> JSON:
    return {
        "type": "function_call",
        "id": "fc_" + call_id.removeprefix("call_"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def envelope(request: Mapping[str, Any], rid: str, model: str, created: int | None = None) -> JSON:
    """A response with no output yet (``in_progress``), echoing the request's settings."""
    text = request.get("text")
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()) if created is None else created,
        "status": "in_progress",
        "model": model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "store": False,
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "text": text if isinstance(text, Mapping) else {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "truncation": "disabled",
        "usage": None,
    }


def finished(out: JSON, finish: Any, chat_usage: Any) -> JSON:
    """``out`` completed (or incomplete, for a chat answer cut by its token limit)."""
    if finish == "length":
        out["status"] = "incomplete"
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        out["status"] = "incomplete"
        out["incomplete_details"] = {"reason": "content_filter"}
    else:
        out["status"] = "completed"
    out["usage"] = usage(chat_usage)
    return out


def from_chat(body: Mapping[str, Any], request: Mapping[str, Any]) -> JSON:
    """The ``response`` for a ``chat.completion`` body. Raises ValueError, TypeError, KeyError
    or AttributeError when the body is not one (the caller treats that as a bad answer)."""
    choice = body["choices"][0]
    msg = choice["message"]
    rid = response_id(body.get("id"))
    out = envelope(request, rid, str(body.get("model") or ""), _int(body.get("created")) or None)
    text = msg.get("content")
    if isinstance(text, str) and text:
        out["output"].append(message_item(text, "msg_" + rid.removeprefix("resp_")))
    for call in msg.get("tool_calls") or []:
        function = call["function"]
        call_id = str(call.get("id") or new_id("call_"))
        raw = function.get("arguments") or "{}"
        arguments = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
        out["output"].append(call_item(call_id, str(function["name"]), arguments))
    return finished(out, choice.get("finish_reason"), body.get("usage"))
