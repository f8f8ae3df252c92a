"""OpenAI Chat Completions requests as Ollama ``/api/chat`` bodies (the way there; the way back
is :mod:`signalbox_providers.translate.ollama`).

* Ollama message content is a string, and images travel beside it as a list of base64 strings.
  Only ``data:`` URLs can be sent: fetching an http(s) image is I/O, which the router would
  have to do first, so such images raise ``TranslationError``.
* Tool call arguments are JSON objects on Ollama, JSON strings on OpenAI; a tool result's
  ``tool_call_id`` is resolved to the ``tool_name`` Ollama expects.
* Ollama has no ``tool_choice``: ``none`` sends no tools and a named choice sends only that
  tool; ``required`` cannot be enforced and behaves as ``auto``.
* ``response_format`` maps to ``format``: ``"json"`` for ``json_object``, the schema itself for
  ``json_schema``. ``max_tokens``, sampling and ``stop`` go into ``options``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from signalbox_providers.translate.openai_format import (
    JSON,
    TranslationError,
    parse_data_url,
    text_of,
)

__all__ = ["to_ollama"]

_OPTIONS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("seed", "seed"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
)


def to_ollama(body: Mapping[str, Any], model: str) -> JSON:
    """The ``/api/chat`` request for OpenAI chat request ``body``, addressed to ``model``."""
    if body.get("n") not in (None, 1):
        raise TranslationError("n > 1 is not supported by Ollama")
    out: JSON = {
        "model": model,
        "messages": _messages(body.get("messages")),
        "stream": bool(body.get("stream", False)),  # Ollama streams unless told otherwise
    }
    tools = _tools(body)
    if tools:
        out["tools"] = tools
    fmt = _format(body.get("response_format"))
    if fmt is not None:
        out["format"] = fmt
    options = _options(body)
    if options:
        out["options"] = options
    return out


def _messages(messages: Any) -> list[JSON]:
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise TranslationError("messages must be a list of objects")
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    out = []
    for msg in messages:
        converted = _message(msg, tool_names)
        for call in msg.get("tool_calls") or []:
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                tool_names[str(call.get("id"))] = str(call["function"].get("name"))
        out.append(converted)
    return out


def _message(msg: Mapping[str, Any], tool_names: Mapping[str, str]) -> JSON:
    role = msg.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": text_of(msg.get("content"))}
    if role == "user":
        return _user_message(msg.get("content"))
    if role == "assistant":
        return _assistant_message(msg)
    if role == "tool":
        out: JSON = {"role": "tool", "content": text_of(msg.get("content"))}
        name = tool_names.get(str(msg.get("tool_call_id")))
        if name is not None:
            out["tool_name"] = name
        return out
    raise TranslationError(f"messages with role {role!r} are not supported by Ollama")


def _is_image(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "image_url"


def _user_message(content: Any) -> JSON:
    if not isinstance(content, list):
        return {"role": "user", "content": text_of(content)}
    out: JSON = {"role": "user", "content": text_of([p for p in content if not _is_image(p)])}
    images = [_image(p) for p in content if _is_image(p)]
    if images:
        out["images"] = images
    return out


def _assistant_message(msg: Mapping[str, Any]) -> JSON:
    out: JSON = {"role": "assistant", "content": text_of(msg.get("content"))}
    calls = msg.get("tool_calls")
    if calls:
        out["tool_calls"] = [_tool_call_out(c) for c in calls]
    return out


def _image(part: Mapping[str, Any]) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    parsed = parse_data_url(url) if isinstance(url, str) else None
    if parsed is None:
        raise TranslationError("Ollama takes images as data: URLs only")
    return parsed[1]


def _tool_call_out(call: Any) -> JSON:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        raise TranslationError("a tool call needs a function")
    return {"function": {"name": function.get("name"), "arguments": _arguments_dict(function)}}


def _arguments_dict(function: Mapping[str, Any]) -> JSON:
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):
        return copy.deepcopy(dict(arguments))
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except (ValueError, RecursionError) as exc:
        raise TranslationError(f"tool call arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TranslationError("tool call arguments must be a JSON object")
    return value


def _tools(body: Mapping[str, Any]) -> list[JSON]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    choice = body.get("tool_choice")
    if choice == "none":
        return []
    functions = [_function_of(t) for t in tools]
    named = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(named, Mapping):
        functions = [f for f in functions if f.get("name") == named.get("name")]
    return [{"type": "function", "function": copy.deepcopy(dict(f))} for f in functions]


def _function_of(tool: Any) -> Mapping[str, Any]:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
        raise TranslationError("only function tools are supported by Ollama")
    return function


def _format(fmt: Any) -> str | JSON | None:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return "json"
    spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
    if kind == "json_schema" and isinstance(spec, Mapping):
        return copy.deepcopy(dict(spec.get("schema") or {"type": "object"}))
    raise TranslationError(f"unsupported response_format: {fmt!r:.80}")


def _options(body: Mapping[str, Any]) -> JSON:
    options: JSON = {
        ours: body[theirs] for theirs, ours in _OPTIONS if body.get(theirs) is not None
    }
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        options["num_predict"] = limit
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return options
