"""An OpenAI chat client -> an Anthropic (Messages API) provider: the request, the answer, the
stream and the errors, so the router can front Claude.

The request (``to_anthropic``): the two formats differ in structure more than in vocabulary.
Anthropic keeps the system prompt outside the conversation, requires user and assistant turns to
alternate, carries tool results as user content blocks, and requires ``max_tokens``. Choices
made where the formats do not line up:

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

The way back (``from_anthropic``, ``AnthropicStream``, ``error_to_openai``) maps Anthropic's stop
reasons and token counts onto OpenAI's (cache reads and writes count as prompt tokens, as OpenAI
counts cached input), and turns the Messages event stream into the chunk sequence an OpenAI
client expects: a role chunk, content and tool-call deltas, a closing chunk with the finish
reason and, when ``stream_options.include_usage`` was set, a usage chunk.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from signalbox_providers.sse import SseEvent
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
        self._told_stop = False  # a message_delta came (it carries the stop reason and usage)
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
            if not self._told_stop:
                raise UpstreamStreamError("message_stop came before any message_delta")
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
        self._told_stop = True
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
