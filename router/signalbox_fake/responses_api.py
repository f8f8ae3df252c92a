"""OpenAI's Responses API, ``POST /v1/responses`` (plain and SSE), as OpenAI serves it: ``input``
as text or items, ``instructions``, function tools and their outputs, ``text.format``,
``max_output_tokens``; ``output`` items back, or the ``response.*`` event stream. The fake keeps
nothing: a ``previous_response_id`` is accepted as given (and recorded like any request)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from signalbox_fake import content, reply, wire


def routes(prefix: str = "/v1") -> list[web.RouteDef]:
    return [web.post(f"{prefix}/responses", create_response)]


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if isinstance(raw, list) and all(isinstance(i, dict) for i in raw):
        return raw
    if body.get("previous_response_id"):
        return []
    raise wire.BadRequest("'input' must be a string or an array of items")


def _text(item: dict[str, Any]) -> str:
    parts = item.get("content")
    if isinstance(parts, str):
        return parts
    return " ".join(p.get("text", "") for p in parts or [] if isinstance(p, dict))


def to_prompt(body: dict[str, Any]) -> reply.Prompt:
    items = _items(body)
    users = [i for i in items if i.get("type", "message") == "message" and i.get("role") == "user"]
    parts = [p for i in users if isinstance(i.get("content"), list) for p in i["content"]]
    images = len([p for p in parts if isinstance(p, dict) and p.get("type") == "input_image"])
    words = sum(content.count_tokens(_text(i)) for i in items if "content" in i)
    tools = tuple(
        reply.Tool(name=t["name"], schema=t.get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = choice.get("name")
    fmt = (body.get("text") or {}).get("format") or {}
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 16):
        raise wire.BadRequest("Invalid 'max_output_tokens': integer below minimum value 16")
    return reply.Prompt(
        last_user_text=_text(users[-1]) if users else "",
        prompt_tokens=words + 3 * len(items) + content.count_tokens(body.get("instructions") or ""),
        images=images,
        after_tool_result=bool(items) and items[-1].get("type") == "function_call_output",
        tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
        max_tokens=max_tokens,
        json_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
        json_object=fmt.get("type") == "json_object",
    )


def _response(body: dict[str, Any], rid: str, model: str, status: str) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": 1.0,
        "top_p": 1.0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def _finish(out: dict[str, Any], r: reply.Reply) -> dict[str, Any]:
    if r.finish == "length":
        out["status"] = "incomplete"
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        out["status"] = "completed"
    out["usage"] = {
        "input_tokens": r.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": r.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    }
    return out


def _items_of(r: reply.Reply, mid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if r.pieces or not r.tool_calls:
        part = {"type": "output_text", "text": r.text, "annotations": [], "logprobs": []}
        out.append(
            {
                "type": "message",
                "id": mid,
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for c in r.tool_calls:
        out.append(
            {
                "type": "function_call",
                "id": "fc_" + c.id.removeprefix("call_"),
                "call_id": c.id,
                "name": c.name,
                "arguments": c.arguments,
                "status": "completed",
            }
        )
    return out


async def create_response(request: web.Request) -> web.StreamResponse:
    state = wire.state_of(request)
    body = await wire.json_body(request)
    model = wire.require_model(state, body)
    r = reply.plan(to_prompt(body), state.name, state.faults.reply_words)
    rid = f"resp_{uuid.uuid4().hex[:24]}"
    mid = f"msg_{uuid.uuid4().hex[:24]}"
    if not body.get("stream"):
        out = _response(body, rid, model, "completed")
        out["output"] = _items_of(r, mid)
        return web.json_response(_finish(out, r))
    resp = await wire.start_stream(request, "text/event-stream")
    await wire.send_chunks(request, resp, stream_events(body, rid, mid, model, r))
    return resp


def stream_events(
    body: dict[str, Any], rid: str, mid: str, model: str, r: reply.Reply
) -> list[bytes]:
    seq = iter(range(1_000_000))
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": next(seq), **fields}
        events.append(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

    started = _response(body, rid, model, "in_progress")
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    done_items = _items_of(r, mid)
    for index, item in enumerate(done_items):
        opened = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opened["content"] = []
            emit("response.output_item.added", output_index=index, item=opened)
            at = {"item_id": mid, "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", **at, part=empty)
            for piece in r.pieces:
                emit("response.output_text.delta", **at, delta=piece, logprobs=[])
            emit("response.output_text.done", **at, text=r.text, logprobs=[])
            emit("response.content_part.done", **at, part=item["content"][0])
        else:
            opened["arguments"] = ""
            emit("response.output_item.added", output_index=index, item=opened)
            for part in content.split_chunks(item["arguments"], 3):
                emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=part,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        emit("response.output_item.done", output_index=index, item=item)
    final = _response(body, rid, model, "completed")
    final["output"] = done_items
    _finish(final, r)
    emit(
        "response.completed" if final["status"] == "completed" else "response.incomplete",
        response=final,
    )
    return events
