"""An OpenAI chat client -> an Ollama provider's native ``/api/chat``: the request, the answer and
the stream.

Ollama also serves an OpenAI-compatible ``/v1``, but the native API is the one that reports
``done_reason`` and token counts on every build and takes ``options`` and ``format`` directly.

The request (``to_ollama``):

* Ollama message content is a string, and images travel beside it as a list of base64 strings.
  Only ``data:`` URLs can be sent: fetching an http(s) image is I/O, which the router would
  have to do first, so such images raise ``TranslationError``.
* Tool call arguments are JSON objects on Ollama, JSON strings on OpenAI; a tool result's
  ``tool_call_id`` is resolved to the ``tool_name`` Ollama expects.
* Ollama has no ``tool_choice``: ``none`` sends no tools and a named choice sends only that
  tool; ``required`` cannot be enforced and behaves as ``auto``.
* ``response_format`` maps to ``format``: ``"json"`` for ``json_object``, the schema itself for
  ``json_schema``. ``max_tokens``, sampling and ``stop`` go into ``options``.

The way back: Ollama calls may carry no id, so the translation generates ``call_...`` ids;
streams are NDJSON objects, each a whole message fragment, and tool calls arrive complete, so
each becomes a single chunk carrying id, name and all its arguments; token counts come from
``prompt_eval_count`` and ``eval_count``; errors become OpenAI-shaped.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from signalbox_providers.translate.openai_format import (
    JSON,
    ChunkWriter,
    TokenUsage,
    TranslationError,
    UpstreamStreamError,
    assistant_message,
    completion_body,
    error_body,
    kind_for_status,
    new_id,
    now,
    parse_data_url,
    text_of,
    token_count,
    tool_call,
    usage_body,
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
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, Mapping):
            raise TranslationError("response_format.json_schema.schema must be a JSON object")
        return copy.deepcopy(dict(schema or {"type": "object"}))
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
