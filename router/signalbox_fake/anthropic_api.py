"""The Anthropic Messages wire format: /v1/models and /v1/messages (plain and SSE events).

Lets tests drive the official ``anthropic`` SDK (and Signalbox's Anthropic adapter) against a
local server: request validation, response bodies and the stream's event sequence follow the
SDK's types, so code that works here works against the real API.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from signalbox_fake import content, reply, wire
from signalbox_fake.state import FakeState

_BLOCK_TYPES = {"text", "image", "tool_use", "tool_result", "document", "thinking"}
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_ROLES = ("user", "assistant", "system")  # the SDK's MessageParam also types system messages
_ROLES_TEXT = "'user', 'assistant' or 'system'"
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/models", list_models), web.post("/v1/messages", create_message)]


async def list_models(request: web.Request) -> web.Response:
    state = wire.state_of(request)
    created = datetime.datetime.fromtimestamp(state.created, datetime.UTC)
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": " ".join(part.capitalize() for part in model.split("-")),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "lifecycle": "active",
        }
        for model in state.models
    ]
    return web.json_response(
        {
            "data": data,
            "has_more": False,
            "first_id": state.models[0] if state.models else None,
            "last_id": state.models[-1] if state.models else None,
        }
    )


def _require_model(state: FakeState, body: dict[str, Any]) -> str:
    """``wire.require_model`` with Anthropic's own wording for an unknown model."""
    try:
        return wire.require_model(state, body)
    except wire.BadRequest as exc:
        if exc.status != 404:
            raise wire.BadRequest("model: Field required") from None
        raise wire.BadRequest(f"model: {body['model']}", 404) from None


def _check_block(where: str, block: Any) -> None:
    if not isinstance(block, Mapping) or block.get("type") not in _BLOCK_TYPES:
        raise wire.BadRequest(f"{where}: Input tag does not match any of the expected tags")
    if block["type"] == "text" and not isinstance(block.get("text"), str):
        raise wire.BadRequest(f"{where}.text: Field required")
    if block["type"] == "image":
        source = block.get("source")
        if not isinstance(source, Mapping):
            raise wire.BadRequest(f"{where}.image.source: Field required")
        if source.get("type") == "base64":
            if source.get("media_type") not in _MEDIA_TYPES:
                raise wire.BadRequest(
                    f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                    "'image/png', 'image/gif' or 'image/webp'"
                )
            if not isinstance(source.get("data"), str):
                raise wire.BadRequest(f"{where}.image.source.base64.data: Field required")
        elif source.get("type") != "url" or not isinstance(source.get("url"), str):
            raise wire.BadRequest(f"{where}.image.source: Input tag does not match")
    if block["type"] == "tool_use" and not isinstance(block.get("input"), Mapping):
        raise wire.BadRequest(f"{where}.tool_use.input: Input should be a valid dictionary")
    if block["type"] == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise wire.BadRequest(f"{where}.tool_result.tool_use_id: Field required")


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise wire.BadRequest("messages: at least one message is required")
    for i, msg in enumerate(messages):
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("role"), str)
            or msg["role"] not in _ROLES
        ):
            raise wire.BadRequest(f"messages.{i}.role: Input should be {_ROLES_TEXT}")
        blocks = msg.get("content")
        if isinstance(blocks, list):
            for j, block in enumerate(blocks):
                _check_block(f"messages.{i}.content.{j}", block)
        elif not isinstance(blocks, str):
            raise wire.BadRequest(f"messages.{i}.content: Input should be a valid list")
    return messages


def _is_tool_result(msg: Mapping[str, Any]) -> bool:
    blocks = msg["content"] if msg["role"] == "user" and isinstance(msg["content"], list) else []
    return any(b.get("type") == "tool_result" for b in blocks)


def _tool_choice(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise wire.BadRequest("tool_choice: Input tag does not match any of the expected tags")
    if kind != "tool":
        return str(kind)
    if not isinstance(choice.get("name"), str):
        raise wire.BadRequest("tool_choice.tool.name: Field required")
    return str(choice["name"])


def _tools(body: dict[str, Any]) -> tuple[reply.Tool, ...]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise wire.BadRequest("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise wire.BadRequest(f"tools.{i}.custom.name: Field required")
    return tuple(
        reply.Tool(name=t["name"], schema=t["input_schema"])
        for t in tools
        if isinstance(t.get("input_schema"), Mapping)
    )


def to_prompt(body: dict[str, Any]) -> reply.Prompt:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise wire.BadRequest("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise wire.BadRequest("max_tokens: Input should be greater than or equal to 1")
    messages = _check_messages(body.get("messages"))
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise wire.BadRequest("stop_sequences: Input should be a valid list of strings")
    user_texts = [content.text_of(m["content"]) for m in messages if m["role"] == "user"]
    return reply.Prompt(
        last_user_text=next((t for t in reversed(user_texts) if t), ""),
        prompt_tokens=content.prompt_tokens(messages, body.get("system")),
        images=content.count_images(messages),
        after_tool_result=_is_tool_result(messages[-1]),
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        max_tokens=max_tokens,
        stop=tuple(stop),
    )


def _stop_reason(r: reply.Reply) -> str:
    if r.finish == "stop" and r.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(r.finish, "end_turn")


def _tool_use(call: reply.ToolCall, input_value: Any) -> dict[str, Any]:
    tool_id = "toolu_" + call.id.removeprefix("call_")
    return {"type": "tool_use", "id": tool_id, "name": call.name, "input": input_value}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _message(mid: str, model: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": None,
        "stop_sequence": None,
    }


async def create_message(request: web.Request) -> web.StreamResponse:
    if not request.headers.get("anthropic-version"):
        raise wire.BadRequest("anthropic-version: header is required")
    state = wire.state_of(request)
    body = await wire.json_body(request)
    model = _require_model(state, body)
    r = reply.plan(to_prompt(body), state.name, state.faults.reply_words)
    mid = f"msg_{uuid.uuid4().hex[:24]}"
    if body.get("stream"):
        resp = await wire.start_stream(request, "text/event-stream")
        await wire.send_chunks(request, resp, stream_events(mid, model, r))
        return resp
    blocks = [{"type": "text", "text": r.text}] if r.pieces or not r.tool_calls else []
    blocks += [_tool_use(c, json.loads(c.arguments)) for c in r.tool_calls]
    message = _message(mid, model, blocks)
    message["usage"] = _usage(r.prompt_tokens, r.completion_tokens)
    message.update(stop_reason=_stop_reason(r), stop_sequence=r.stop_sequence)
    return web.json_response(message, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})


def _event(payload: dict[str, Any]) -> bytes:
    return wire.sse_event(str(payload["type"]), payload)


def _block_events(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    out = [_event({"type": "content_block_start", "index": index, "content_block": block})]
    out += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    out.append(_event({"type": "content_block_stop", "index": index}))
    return out


def stream_events(mid: str, model: str, r: reply.Reply) -> list[bytes]:
    """The full SSE event sequence for ``r``, as the Messages API streams it."""
    blocks: list[list[bytes]] = []
    if r.pieces or not r.tool_calls:
        deltas = [{"type": "text_delta", "text": piece} for piece in r.pieces]
        blocks.append(_block_events(0, {"type": "text", "text": ""}, deltas))
    for call in r.tool_calls:
        parts = content.split_chunks(call.arguments, 3)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
        blocks.append(_block_events(len(blocks), _tool_use(call, {}), deltas))
    start = _message(mid, model, [])
    start["usage"] = _usage(r.prompt_tokens, 1)
    out = [_event({"type": "message_start", "message": start})]
    out += [*blocks[0][:1], _event({"type": "ping"}), *blocks[0][1:]]
    for block in blocks[1:]:
        out += block
    delta = {"stop_reason": _stop_reason(r), "stop_sequence": r.stop_sequence}
    usage = {"output_tokens": r.completion_tokens}
    out.append(_event({"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(_event({"type": "message_stop"}))
    return out
