"""OpenAI Responses request (the stateless subset) -> the router's internal chat request.

``instructions`` becomes a system message; ``input`` as text becomes one user message, as
items: messages (``input_text``, ``input_image``, and ``output_text`` for earlier assistant
turns), ``function_call`` items (consecutive ones joined into one assistant turn) and
``function_call_output`` items (tool messages). Function tools, ``tool_choice``,
``text.format`` (JSON schema or JSON object), ``max_output_tokens`` and sampling options carry
over. A request that depends on stored state (``previous_response_id``, ``conversation``) can
only be served by OpenAI itself: ``stateful`` says so, and other providers refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signalbox_providers.ingress.invalid import InvalidRequest
from signalbox_providers.translate.openai_format import JSON

_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


class InvalidResponses(InvalidRequest):
    """The body is not a Responses request the router can serve; ``param`` names the field."""


def stateful(body: Mapping[str, Any]) -> bool:
    return body.get("previous_response_id") is not None or body.get("conversation") is not None


def to_chat(body: Any) -> JSON:
    """The internal chat request for Responses request ``body``; InvalidResponses if it is
    not one."""
    if not isinstance(body, Mapping):
        raise InvalidResponses("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidResponses("'model' is required and must be a non-empty string.", "model")
    instructions = body.get("instructions")
    chat: list[JSON] = []
    if isinstance(instructions, str) and instructions:
        chat.append({"role": "system", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        chat.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            _item(chat, item, f"input[{i}]")
    elif not stateful(body):
        raise InvalidResponses("'input' must be a string or an array of items.", "input")
    if not chat and not stateful(body):
        raise InvalidResponses("'input' must not be empty.", "input")
    out: JSON = {"model": model, "messages": chat}
    out.update(_options(body))
    out.update(_tools(body))
    return out


def _item(chat: list[JSON], item: Any, where: str) -> None:
    kind = item.get("type", "message") if isinstance(item, Mapping) else None
    if kind == "message" and isinstance(item, Mapping):
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidResponses(f"Invalid value for '{where}.role'.", f"{where}.role")
        chat.append({"role": role, "content": _content(item.get("content"), f"{where}.content")})
    elif kind == "function_call" and isinstance(item, Mapping):
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidResponses(f"'{where}' needs a call_id and a name.", where)
        arguments = item.get("arguments")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments or "{}"},
        }
        last = chat[-1] if chat else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        else:
            chat.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output" and isinstance(item, Mapping):
        output = item.get("output")
        if not isinstance(item.get("call_id"), str) or not isinstance(output, str | list):
            raise InvalidResponses(f"'{where}' needs a call_id and an output.", where)
        text = output if isinstance(output, str) else _text(output, f"{where}.output")
        chat.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    elif kind != "reasoning":  # reasoning items have no chat counterpart
        raise InvalidResponses(f"'{where}': item type {kind!r} is not supported here.", where)


def _content(content: Any, where: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidResponses(f"'{where}' must be a string or an array.", where)
    parts: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in _TEXT_PARTS and isinstance(part, Mapping) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part, Mapping):
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidResponses(f"'{where}[{j}]' needs an image_url.", f"{where}[{j}]")
            image: JSON = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidResponses(f"'{where}[{j}]': part {kind!r} is not supported here.")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _text(parts: list[Any], where: str) -> str:
    content = _content(parts, where)
    if isinstance(content, str):
        return content
    raise InvalidResponses(f"'{where}' must hold text only.", where)


def _options(body: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if type(limit) is not int or limit < 1:
            raise InvalidResponses("'max_output_tokens' must be a positive integer.")
        out["max_tokens"] = limit
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidResponses("'stream' must be a boolean.", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    return out


def _tools(body: Mapping[str, Any]) -> JSON:
    tools = body.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise InvalidResponses("'tools' must be an array.", "tools")
    out: JSON = {"tools": [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]}
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        out["tool_choice"] = choice
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        raise InvalidResponses("'tool_choice' must be auto, none, required or a function.")
    if body.get("parallel_tool_calls") is False:
        out["parallel_tool_calls"] = False
    return out


def _tool(tool: Any, where: str) -> JSON:
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        raise InvalidResponses(f"'{where}': only function tools are supported here.", where)
    if not isinstance(tool.get("name"), str):
        raise InvalidResponses(f"'{where}.name' is required.", f"{where}.name")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    if tool.get("strict") is None:
        function.pop("strict", None)
    return {"type": "function", "function": function}
