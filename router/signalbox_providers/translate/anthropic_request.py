"""OpenAI chat request -> Anthropic Messages request (the request half of ``translate.anthropic``).

The two formats differ in structure more than in vocabulary: Anthropic keeps the system prompt
outside the conversation, requires user and assistant turns to alternate, carries tool results
as user content blocks, and requires ``max_tokens``. Choices made where the formats do not
line up:

* ``response_format`` (``json_object`` / ``json_schema``): the Messages API has no JSON mode, so
  the request gets an instruction appended to its system prompt (with the schema, if any). This
  asks for JSON; it cannot guarantee it the way OpenAI's structured outputs do.
* ``temperature`` is clamped to Anthropic's 0..1 range (OpenAI allows up to 2) rather than
  letting the upstream reject the request.
* ``tool_choice`` is sent only with tools; ``parallel_tool_calls: false`` becomes
  ``disable_parallel_tool_use``; ``user`` becomes ``metadata.user_id``.
* Sampling options with no Anthropic counterpart (penalties, seed, logprobs, ...) are dropped;
  things that would change the answer's shape (``n`` > 1, audio or file parts, custom tools)
  raise ``TranslationError``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from signalbox_providers.translate.openai_format import (
    JSON,
    TranslationError,
    parse_data_url,
    text_of,
)

_JSON_OBJECT = "Respond with a single valid JSON object and nothing else: no prose, no code fences."
_JSON_SCHEMA = (
    "Respond with a single JSON value that conforms to the JSON schema below, and nothing "
    "else: no prose, no code fences.\nSchema:\n"
)
_TOOL_CHOICES = MappingProxyType({"auto": "auto", "none": "none", "required": "any"})
_SYSTEM_ROLES = ("system", "developer")


def to_anthropic(body: Mapping[str, Any], model: str, default_max_tokens: int = 4096) -> JSON:
    """The Messages API request for OpenAI chat request ``body``, addressed to ``model``."""
    if body.get("n") not in (None, 1):
        raise TranslationError("n > 1 is not supported by Anthropic")
    system, conversation = _split_system(body.get("messages"))
    out: JSON = {
        "model": model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": _messages(conversation),
    }
    system_text = "\n\n".join(s for s in (*system, _format_instruction(body)) if s)
    if system_text:
        out["system"] = system_text
    out.update(_sampling(body))
    out.update(_tools(body))
    if body.get("stream") is not None:
        out["stream"] = bool(body["stream"])
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    return out


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def _split_system(messages: Any) -> tuple[list[str], list[Mapping[str, Any]]]:
    """System and developer texts, in order, and the remaining conversation."""
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise TranslationError("messages must be a list of objects")
    system = [text_of(m.get("content")) for m in messages if m.get("role") in _SYSTEM_ROLES]
    rest = [m for m in messages if m.get("role") not in _SYSTEM_ROLES]
    return system, rest


def _messages(conversation: list[Mapping[str, Any]]) -> list[JSON]:
    """Turns with alternating roles: consecutive same-role messages become one turn."""
    turns: list[JSON] = []
    for msg in conversation:
        role, blocks = _turn(msg)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return [_compact(turn) for turn in turns]


def _compact(turn: JSON) -> JSON:
    """A turn that is one text block is sent as a plain string, the common short form."""
    blocks = turn["content"]
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _turn(msg: Mapping[str, Any]) -> tuple[str, list[JSON]]:
    role = msg.get("role")
    if role == "user":
        return "user", _user_blocks(msg.get("content"))
    if role == "assistant":
        return "assistant", _assistant_blocks(msg)
    if role == "tool":
        return "user", [_tool_result(msg)]
    raise TranslationError(f"messages with role {role!r} are not supported by Anthropic")


def _user_blocks(content: Any) -> list[JSON]:
    if isinstance(content, list):
        return [b for b in (_user_part(p) for p in content) if b is not None]
    text = text_of(content)
    return [{"type": "text", "text": text}] if text else []


def _user_part(part: Any) -> JSON | None:
    if isinstance(part, Mapping) and part.get("type") == "image_url":
        return _image_block(part.get("image_url"))
    text = text_of([part])
    return {"type": "text", "text": text} if text else None  # Anthropic rejects empty text


def _image_block(image: Any) -> JSON:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str):
        raise TranslationError("image_url.url must be a string")
    parsed = parse_data_url(url)
    if parsed is not None:
        media_type, data = parsed
        media_type = "image/jpeg" if media_type == "image/jpg" else media_type
        source: JSON = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise TranslationError("image_url.url must be a data: or http(s) URL")
    return {"type": "image", "source": source}


def _assistant_blocks(msg: Mapping[str, Any]) -> list[JSON]:
    text = text_of(msg.get("content"))
    blocks: list[JSON] = [{"type": "text", "text": text}] if text else []
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TranslationError("tool_calls must be a list")
    return blocks + [_tool_use(call) for call in calls]


def _tool_use(call: Any) -> JSON:
    if not isinstance(call, Mapping) or call.get("type", "function") != "function":
        raise TranslationError("only function tool calls are supported by Anthropic")
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
        raise TranslationError("a tool call needs an id and a function")
    return {
        "type": "tool_use",
        "id": call["id"],
        "name": function.get("name"),
        "input": _parse_arguments(function.get("arguments")),
    }


def _parse_arguments(arguments: Any) -> JSON:
    if isinstance(arguments, Mapping):
        return copy.deepcopy(dict(arguments))
    try:
        value = json.loads(arguments) if arguments else {}
    except (TypeError, ValueError, RecursionError) as exc:
        raise TranslationError(f"tool call arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TranslationError("tool call arguments must be a JSON object")
    return value


def _tool_result(msg: Mapping[str, Any]) -> JSON:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise TranslationError("a tool message needs a tool_call_id")
    block: JSON = {"type": "tool_result", "tool_use_id": call_id}
    text = text_of(msg.get("content"))
    if text:
        block["content"] = text
    return block


def _sampling(body: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = list(stop)
    return out


def _tools(body: Mapping[str, Any]) -> JSON:
    tools = body.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out: JSON = {"tools": [_tool(t) for t in tools]}
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(tool: Any) -> JSON:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
        raise TranslationError("only function tools are supported by Anthropic")
    out: JSON = {"name": function.get("name")}
    if function.get("description"):
        out["description"] = function["description"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    out["input_schema"] = copy.deepcopy(schema)
    return out


def _tool_choice(choice: Any) -> JSON | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return {"type": _TOOL_CHOICES[choice]}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise TranslationError(f"unsupported tool_choice: {choice!r:.80}")


def _format_instruction(body: Mapping[str, Any]) -> str:
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in (None, "text"):
        return ""
    if kind == "json_object":
        return _JSON_OBJECT
    spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
    if kind == "json_schema" and isinstance(spec, Mapping):
        schema = spec.get("schema") or {"type": "object"}
        return _JSON_SCHEMA + json.dumps(schema, indent=2, sort_keys=True)
    raise TranslationError(f"unsupported response_format: {fmt!r:.80}")
