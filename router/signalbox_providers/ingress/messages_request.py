"""Anthropic Messages request -> the router's internal (OpenAI chat) request.

The mirror of ``translate.anthropic_request``. The system prompt becomes a system message;
``tool_result`` blocks become ``tool`` messages (ahead of the rest of their user turn, as
Anthropic puts them first); ``tool_use`` blocks become ``tool_calls``; images become
``image_url`` parts (a data: URL for base64 sources); ``tool_choice`` any/tool/none become
required/a named function/none and ``disable_parallel_tool_use`` becomes
``parallel_tool_calls: false``; ``stop_sequences`` becomes ``stop``. Thinking blocks are
dropped (no chat counterpart); documents, server tools and other block types are refused
with ``InvalidMessages``, never silently lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from signalbox_providers.ingress.invalid import InvalidRequest
from signalbox_providers.translate.openai_format import JSON

_DROPPED = frozenset({"thinking", "redacted_thinking"})
_ROLES = frozenset({"user", "assistant"})


class InvalidMessages(InvalidRequest):
    """The body is not a Messages request the router can serve; ``param`` names the field."""


def to_chat(body: Any) -> JSON:
    """The internal chat request for Messages request ``body``; InvalidMessages if it is not
    one."""
    if not isinstance(body, Mapping):
        raise InvalidMessages("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidMessages("model: Field required", "model")
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is not int or max_tokens < 1:
        raise InvalidMessages("max_tokens: must be a positive integer", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidMessages("messages: must be a non-empty array", "messages")
    out: JSON = {"model": model, "max_tokens": max_tokens}
    chat = [{"role": "system", "content": s} for s in [_system(body.get("system"))] if s]
    for i, msg in enumerate(messages):
        chat += _message(msg, f"messages.{i}")
    out["messages"] = chat
    out.update(_options(body))
    out.update(_tools(body))
    return out


def _system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        return "\n\n".join(_text_block(b, "system") for b in system)
    raise InvalidMessages("system: must be a string or an array of text blocks", "system")


def _text_block(block: Any, where: str) -> str:
    if isinstance(block, Mapping) and block.get("type") == "text":
        text = block.get("text")
        if isinstance(text, str):
            return text
    raise InvalidMessages(f"{where}: expected a text block", where)


def _message(msg: Any, where: str) -> list[JSON]:
    if not isinstance(msg, Mapping) or msg.get("role") not in _ROLES:
        raise InvalidMessages(f"{where}.role: must be 'user' or 'assistant'", f"{where}.role")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": msg["role"], "content": content}]
    if not isinstance(content, list):
        raise InvalidMessages(f"{where}.content: must be a string or an array", where)
    if msg["role"] == "assistant":
        return [_assistant(content, where)]
    return _user(content, where)


def _assistant(blocks: list[Any], where: str) -> JSON:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(_text_block(block, f"{where}.content.{j}"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, f"{where}.content.{j}"))
        elif kind not in _DROPPED:
            raise _unsupported(kind, f"{where}.content.{j}")
    out: JSON = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_call(block: Mapping[str, Any], where: str) -> JSON:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise InvalidMessages(f"{where}: tool_use needs a string id and name", where)
    arguments = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _user(blocks: list[Any], where: str) -> list[JSON]:
    results: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "tool_result":
            text, images = _tool_result(block, at)
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts += images  # a tool message carries text only: its images follow as user content
        elif kind == "text":
            parts.append({"type": "text", "text": _text_block(block, at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind not in _DROPPED:
            raise _unsupported(kind, at)
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[str, list[JSON]]:
    if not isinstance(block.get("tool_use_id"), str):
        raise InvalidMessages(f"{where}.tool_use_id: Field required", f"{where}.tool_use_id")
    content = block.get("content")
    texts, images = [], []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            at = f"{where}.content.{k}"
            is_image = isinstance(part, Mapping) and part.get("type") == "image"
            if is_image:
                images.append(_image(part, at))
            else:
                texts.append(_text_block(part, at))
    elif content is not None:
        raise InvalidMessages(f"{where}.content: must be a string or an array", where)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _image(block: Mapping[str, Any], where: str) -> JSON:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind == "base64" and isinstance(source, Mapping):
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source, Mapping) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise InvalidMessages(f"{where}.source: a base64 or url image source is required", where)


def _unsupported(kind: Any, where: str) -> InvalidMessages:
    return InvalidMessages(f"{where}: content block type {kind!r} is not supported here", where)


def _options(body: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
            out[key] = body[key]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidMessages("stop_sequences: must be an array of strings", "stop_sequences")
        if stop:
            out["stop"] = list(stop)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidMessages("stream: must be a boolean", "stream")
    if stream:  # usage is needed for message_delta and for metering
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    return out


def _tools(body: Mapping[str, Any]) -> JSON:
    tools = body.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise InvalidMessages("tools: must be an array", "tools")
    out: JSON = {"tools": [_tool(t, f"tools.{i}") for i, t in enumerate(tools)]}
    choice = body.get("tool_choice")
    if choice is None:
        return out
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidMessages("tool_choice: must be auto, any, tool (with a name) or none")
    if isinstance(choice, Mapping) and choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _tool(tool: Any, where: str) -> JSON:
    if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
        raise InvalidMessages(f"{where}.name: Field required", f"{where}.name")
    if tool.get("type") not in (None, "custom"):
        raise InvalidMessages(f"{where}: server tools are not supported here", where)
    schema = tool.get("input_schema")
    if not isinstance(schema, Mapping):
        raise InvalidMessages(f"{where}.input_schema: Field required", f"{where}.input_schema")
    function: JSON = {"name": tool["name"], "parameters": dict(schema)}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}
