"""An OpenAI Responses client (the stateless subset) -> a provider the router speaks OpenAI chat
to: the request, the answer and the stream.

The request (``to_chat``): ``instructions`` becomes a system message; ``input`` as text becomes
one user message, as items: messages (``input_text``, ``input_image``, and ``output_text`` for
earlier assistant turns), ``function_call`` items (consecutive ones joined into one assistant
turn) and ``function_call_output`` items (tool messages). Function tools, ``tool_choice``,
``text.format`` (JSON schema or JSON object), ``max_output_tokens`` and sampling options carry
over. A request that depends on stored state (``previous_response_id``, ``conversation``) can
only be served by OpenAI itself: ``stateful`` says so, and other providers refuse it.

The answer (``from_chat``): a ``response`` whose ``output`` holds a ``message`` item (one
``output_text`` part) and one ``function_call`` item per tool call; a chat answer cut by its
token limit is an ``incomplete`` response (``max_output_tokens``). The request's own settings
(instructions, tools, tool choice, text format) are echoed as OpenAI echoes them. Nothing is
stored: ``store`` is always false. Errors keep OpenAI's shape, as the Responses API's do.

The stream (``ChatResponseEvents``) writes ``response.created`` and ``response.in_progress`` on
the first chunk; per text item ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` ... ``response.output_text.done``, ``response.content_part.done``
and ``response.output_item.done``; per tool call ``response.output_item.added``,
``response.function_call_arguments.delta`` ... ``.done`` and ``response.output_item.done``;
and at ``[DONE]`` ``response.completed`` (``response.incomplete`` when the token limit cut it),
every event numbered by ``sequence_number``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from signalbox_providers.dialects.base import StreamTranslator
from signalbox_providers.translate.openai_format import JSON, InvalidRequest, new_id
from signalbox_providers.translate.over_chat import OverChat

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
        if not isinstance(role, str) or role not in _ROLES:
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


class ChatResponseEvents(OverChat):
    """OpenAI chat chunks (from ``inner``) -> Responses stream events."""

    def __init__(self, inner: StreamTranslator, request: Mapping[str, Any], model: str) -> None:
        super().__init__(inner)
        self._request, self._model = request, model
        self._response: JSON | None = None
        self._seq = 0
        self._items: list[JSON] = []  # every output item added, at its output_index
        # The open items ("text", or "tool:<call index>") and their output indexes. Tool calls
        # stay open until the end: an upstream may interleave the deltas of parallel calls.
        self._open: dict[str, int] = {}
        self._finish: Any = None
        self._usage: Any = None

    def _on_chunk(self, chunk: Any, out: list[bytes]) -> None:
        self._chunk(chunk, out)

    def _on_done(self, out: list[bytes]) -> None:
        self._finish_all(out)

    def _event(self, out: list[bytes], kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    def _start(self, chunk: Mapping[str, Any], out: list[bytes]) -> JSON:
        rid = response_id(chunk.get("id"))
        model = str(chunk.get("model") or self._model)
        response = self._response = envelope(self._request, rid, model)
        self._event(out, "response.created", response=response)
        self._event(out, "response.in_progress", response=response)
        return response

    def _chunk(self, chunk: Mapping[str, Any], out: list[bytes]) -> None:
        if self._response is None:
            self._start(chunk, out)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text(text, out)
            for call in delta.get("tool_calls") or []:
                self._tool(call, out)
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]

    def _add(self, key: str, item: JSON, out: list[bytes]) -> int:
        at = self._open[key] = len(self._items)
        self._items.append(item)
        self._event(out, "response.output_item.added", output_index=at, item=_public(item))
        return at

    def _text(self, text: str, out: list[bytes]) -> None:
        at = self._open.get("text")
        if at is None:
            self._close_all(out)
            assert self._response is not None
            item = message_item("", "msg_" + self._response["id"][5:], "in_progress")
            item["text"] = ""
            at = self._add("text", item, out)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._event(out, "response.content_part.added", **self._at(at), part=part)
        self._items[at]["text"] += text
        self._event(out, "response.output_text.delta", **self._at(at), delta=text, logprobs=[])

    def _tool(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        at = self._open.get(key)
        if at is None:
            self._close(out, "text")
            item = call_item(
                str(call.get("id") or new_id("call_")),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            at = self._add(key, item, out)
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item = self._items[at]
            item["arguments"] += fragment
            self._event(
                out,
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=at,
                delta=fragment,
            )

    def _at(self, at: int) -> JSON:
        return {"item_id": self._items[at]["id"], "output_index": at, "content_index": 0}

    def _close(self, out: list[bytes], key: str) -> None:
        at = self._open.pop(key, None)
        if at is None:
            return
        item = self._items[at]
        if item["type"] == "message":
            text = item.pop("text")
            done = message_item(text, item["id"])
            self._event(out, "response.output_text.done", **self._at(at), text=text, logprobs=[])
            self._event(out, "response.content_part.done", **self._at(at), part=done["content"][0])
        else:
            done = {**item, "status": "completed"}
            self._event(
                out,
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=at,
                name=item["name"],
                arguments=item["arguments"],
            )
        self._items[at] = done
        self._event(out, "response.output_item.done", output_index=at, item=done)

    def _close_all(self, out: list[bytes]) -> None:
        for key in sorted(self._open, key=self._open.__getitem__):
            self._close(out, key)

    def _finish_all(self, out: list[bytes]) -> None:
        response = self._response if self._response is not None else self._start({}, out)
        self._close_all(out)
        response["output"] = self._items
        self._done = True
        finished(response, self._finish, self._usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._event(out, kind, response=response)


def _public(item: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in item.items() if k != "text"}
