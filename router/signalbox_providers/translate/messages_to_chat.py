"""An Anthropic Messages client -> a provider the router speaks OpenAI chat to: the request, the
answer, the stream and the errors, so Claude Code and the Anthropic SDK can use any provider.

The request (``to_chat``), the mirror of ``chat_to_anthropic``: the system prompt becomes a
system message; ``tool_result`` blocks become ``tool`` messages (ahead of the rest of their user
turn, as Anthropic puts them first); ``tool_use`` blocks become ``tool_calls``; images become
``image_url`` parts (a data: URL for base64 sources); ``tool_choice`` any/tool/none become
required/a named function/none and ``disable_parallel_tool_use`` becomes
``parallel_tool_calls: false``; ``stop_sequences`` becomes ``stop``. Thinking blocks are
dropped (no chat counterpart); documents, server tools and other block types are refused
with ``InvalidMessages``, never silently lost.

The answer (``from_chat``): finish reasons map back as ``chat_to_anthropic`` maps them forward:
stop -> end_turn, length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal. A
chat answer does not say which stop sequence matched, so ``stop_sequence`` stays null. Error
bodies take Anthropic's shape (``{"type": "error", "error": {...}}``).

The stream (``ChatEvents``) wraps a provider dialect's stream translator, whose output is always
whole ``data:`` events, and writes ``message_start`` and a ``ping`` on the first chunk, a
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` run per text or
tool-use block, and, at ``[DONE]``, ``message_delta`` (stop reason and usage) and
``message_stop``. A tool call's arguments are held until its block ends and sent as one
``input_json_delta`` once they read as JSON: Anthropic clients parse the pieces as they come,
and an upstream's broken arguments must end the stream with an error event, as they fail a
plain answer, rather than crash the client's parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from signalbox_providers.dialects.base import StreamFailed, StreamTranslator
from signalbox_providers.translate.openai_format import (
    JSON,
    InvalidRequest,
    new_id,
)
from signalbox_providers.translate.over_chat import OverChat

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
    if (
        not isinstance(msg, Mapping)
        or not isinstance(msg.get("role"), str)
        or msg["role"] not in _ROLES
    ):
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


def event(name: str, payload: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ChatEvents(OverChat):
    """OpenAI chat chunks (from ``inner``) -> Anthropic Messages events."""

    def __init__(self, inner: StreamTranslator, model: str) -> None:
        super().__init__(inner)
        self._model = model
        self._started = False
        self._index = -1  # the last content block opened
        # The open blocks ("text", or "tool:<call index>") and their indexes. Tool calls stay
        # open until the end: an upstream may interleave the deltas of parallel calls.
        self._open: dict[str, int] = {}
        self._arguments: dict[str, list[str]] = {}  # an open tool call's pieces, held
        self._stop: Any = None
        self._usage: Any = None

    def _on_chunk(self, chunk: Any, out: list[bytes]) -> None:
        out += self._chunk(chunk)

    def _on_done(self, out: list[bytes]) -> None:
        out += self._finish()

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if "text" not in self._open:
                    out += self._close_all()
                    out += self._block("text", {"type": "text", "text": ""})
                out.append(self._delta("text", {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason") is not None:
                self._stop = choice["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self._started = True
        message: JSON = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": str(chunk.get("model") or self._model),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            event("message_start", {"type": "message_start", "message": message}),
            event("ping", {"type": "ping"}),
        ]

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        out: list[bytes] = []
        if key not in self._open:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out += self._close("text")
            out += self._block(key, block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._arguments.setdefault(key, []).append(arguments)
        return out

    def _input(self, key: str) -> list[bytes]:
        """The held arguments of the tool call ``key`` as one delta, once checked: arguments
        cut off with the answer (``finish_reason: length``) are no input, as in a plain answer."""
        arguments = "".join(self._arguments.pop(key, ()))
        if not arguments:
            return []
        try:
            orjson.loads(arguments)
        except orjson.JSONDecodeError:  # also past orjson's nesting limit
            if self._stop == "length":
                return []
            raise StreamFailed("the upstream's tool call arguments are not JSON") from None
        return [self._delta(key, {"type": "input_json_delta", "partial_json": arguments})]

    def _block(self, key: str, block: JSON) -> list[bytes]:
        self._index += 1
        self._open[key] = self._index
        payload = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [event("content_block_start", payload)]

    def _delta(self, key: str, delta: JSON) -> bytes:
        payload = {"type": "content_block_delta", "index": self._open[key], "delta": delta}
        return event("content_block_delta", payload)

    def _close(self, key: str) -> list[bytes]:
        if key not in self._open:
            return []
        out = self._input(key)
        index = self._open.pop(key)
        return [*out, event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _close_all(self) -> list[bytes]:
        return [
            e for key in sorted(self._open, key=self._open.__getitem__) for e in self._close(key)
        ]

    def _finish(self) -> list[bytes]:
        out = [] if self._started else self._start({})
        out += self._close_all()
        self._done = True
        u = usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._stop), "stop_sequence": None},
            "usage": u,
        }
        return [
            *out,
            event("message_delta", delta),
            event("message_stop", {"type": "message_stop"}),
        ]
