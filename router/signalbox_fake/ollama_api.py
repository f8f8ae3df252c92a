"""Ollama's native API: /api/version, /api/tags, /api/ps, /api/show (``ollama_show``), /api/chat
(JSON or NDJSON), /api/embed.

Signalbox probes and routes to Ollama through these routes as well as the OpenAI-compatible
``/v1`` ones; this module lets tests run the official ``ollama`` client against a local fake.
Bodies follow that client's types; durations are integer nanoseconds, as Ollama reports them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import json
import re
from typing import Any

from aiohttp import web

from signalbox_fake import content, ollama_show, reply, wire
from signalbox_fake.state import FakeState

VERSION = "0.12.3"
_ROLES = {"system", "user", "assistant", "tool"}
_LOAD_NS = 12_000_000
_PROMPT_TOKEN_NS = 400_000
_EVAL_TOKEN_NS = 9_000_000
_KEEP_ALIVE = datetime.timedelta(minutes=5)
_CONTEXT = 4096  # num_ctx when a request sets none


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/version", version),
        web.get("/api/tags", tags),
        web.get("/api/ps", running),
        web.post("/api/show", ollama_show.show),
        web.post("/api/chat", chat),
        web.post("/api/embed", embed),
    ]


def _timestamp(at: datetime.datetime | None = None) -> str:
    at = at or datetime.datetime.now(datetime.UTC)
    return at.isoformat().replace("+00:00", "Z")


def _details(model: str) -> dict[str, Any]:
    letters = re.match(r"[a-z]+", model.lower())
    family = letters.group(0) if letters else "llama"
    tag = model.partition(":")[2].lower()
    size = tag.upper() if re.fullmatch(r"\d+(\.\d+)?[mb]", tag) else "8.0B"
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": size,
        "quantization_level": "Q4_K_M",
    }


def _describe(model: str) -> dict[str, Any]:
    """The fields /api/tags and /api/ps share for one model."""
    digest = hashlib.sha256(model.encode()).hexdigest()
    size = 1_000_000_000 + int(digest[:6], 16) * 1000
    return {
        "name": model,
        "model": model,
        "size": size,
        "digest": digest,
        "details": _details(model),
    }


async def version(request: web.Request) -> web.Response:
    del request
    return web.json_response({"version": VERSION})


async def tags(request: web.Request) -> web.Response:
    state = wire.state_of(request)
    modified = _timestamp(datetime.datetime.fromtimestamp(state.created, datetime.UTC))
    models = [{**_describe(m), "modified_at": modified} for m in state.models]
    return web.json_response({"models": models})


async def running(request: web.Request) -> web.Response:
    """Models count as loaded once a request has named them, as with a real Ollama."""
    state = wire.state_of(request)
    used = {seen.model for seen in state.seen}
    expires = _timestamp(datetime.datetime.now(datetime.UTC) + _KEEP_ALIVE)
    models = []
    for model in (m for m in state.models if m in used):
        item = _describe(model)
        item.update(expires_at=expires, size_vram=item["size"], context_length=_CONTEXT)
        models.append(item)
    return web.json_response({"models": models})


def _require_model(state: FakeState, body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise wire.BadRequest("model is required")
    if name not in state.models and name.removesuffix(":latest") not in state.models:
        raise wire.BadRequest(f"model '{name}' not found", 404)  # as Ollama v0.17.4 says it
    return name


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise wire.BadRequest("messages must be an array")
    for msg in messages:
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("role"), str)
            or msg["role"] not in _ROLES
        ):
            raise wire.BadRequest(f"invalid role in message: {msg!r:.80}")
        if not isinstance(msg.get("content", ""), str):
            raise wire.BadRequest("message content must be a string")
        for image in msg.get("images") or []:
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise wire.BadRequest(f"illegal base64 data in image: {exc}") from None
    return messages


def to_prompt(body: dict[str, Any]) -> reply.Prompt:
    messages = _check_messages(body.get("messages") or [])
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise wire.BadRequest("options must be an object")
    num_predict = options.get("num_predict")
    stop = options.get("stop") or ()
    fmt = body.get("format") or None
    users = [m for m in messages if m["role"] == "user"]
    tools = tuple(
        reply.Tool(name=t["function"]["name"], schema=t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    )
    return reply.Prompt(
        last_user_text=content.text_of(users[-1].get("content")) if users else "",
        prompt_tokens=content.prompt_tokens(messages),
        images=content.count_images(messages),
        after_tool_result=bool(messages) and messages[-1]["role"] == "tool",
        tools=tools,
        max_tokens=num_predict if isinstance(num_predict, int) and num_predict > 0 else None,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        json_schema=fmt if isinstance(fmt, dict) else None,
        json_object=fmt == "json",
    )


def _fit(body: dict[str, Any], prompt: reply.Prompt) -> reply.Prompt:
    """A prompt over the context window (``options.num_ctx``) cut to fit, as Ollama does unless
    ``truncate`` is false (then a 400)."""
    num_ctx = (body.get("options") or {}).get("num_ctx")
    window = num_ctx if isinstance(num_ctx, int) and num_ctx > 0 else _CONTEXT
    if prompt.prompt_tokens <= window:
        return prompt
    if body.get("truncate") is False:
        raise wire.BadRequest("the input length exceeds the context length")
    return dataclasses.replace(prompt, prompt_tokens=window)


def _timings(prompt_tokens: int, eval_count: int) -> dict[str, int]:
    prompt_ns = prompt_tokens * _PROMPT_TOKEN_NS
    eval_ns = max(eval_count, 1) * _EVAL_TOKEN_NS
    return {
        "total_duration": _LOAD_NS + prompt_ns + eval_ns,
        "load_duration": _LOAD_NS,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": eval_count,
        "eval_duration": eval_ns,
    }


def _tool_calls(r: reply.Reply) -> list[dict[str, Any]]:
    return [
        {"function": {"index": i, "name": c.name, "arguments": json.loads(c.arguments)}}
        for i, c in enumerate(r.tool_calls)
    ]


def _line(model: str, message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": model, "created_at": _timestamp(), "message": message, **extra}


def _final(model: str, r: reply.Reply, text: str) -> dict[str, Any]:
    done_reason = "length" if r.finish == "length" else "stop"
    message: dict[str, Any] = {"role": "assistant", "content": text}
    return _line(
        model,
        message,
        done_reason=done_reason,
        done=True,
        **_timings(r.prompt_tokens, r.completion_tokens),
    )


def stream_lines(model: str, r: reply.Reply) -> list[bytes]:
    """The NDJSON lines of a streamed chat: pieces, tool calls, then the closing summary."""
    lines = [_line(model, {"role": "assistant", "content": p}, done=False) for p in r.pieces]
    if r.tool_calls:
        message = {"role": "assistant", "content": "", "tool_calls": _tool_calls(r)}
        lines.append(_line(model, message, done=False))
    lines.append(_final(model, r, ""))
    return [json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines]


async def chat(request: web.Request) -> web.StreamResponse:
    state = wire.state_of(request)
    body = await wire.json_body(request)
    model = _require_model(state, body)
    r = reply.plan(_fit(body, to_prompt(body)), state.name, state.faults.reply_words)
    if body.get("stream", True):
        resp = await wire.start_stream(request, "application/x-ndjson")
        await wire.send_chunks(request, resp, stream_lines(model, r))
        return resp
    final = _final(model, r, r.text)
    if r.tool_calls:
        final["message"]["tool_calls"] = _tool_calls(r)
    return web.json_response(final)


async def embed(request: web.Request) -> web.Response:
    state = wire.state_of(request)
    body = await wire.json_body(request)
    model = _require_model(state, body)
    raw = body.get("input", "")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise wire.BadRequest("invalid input type")
    dims = body.get("dimensions") or 8
    if not isinstance(dims, int) or dims < 1:
        raise wire.BadRequest("dimensions must be a positive integer")
    tokens = sum(content.count_tokens(t) for t in texts)
    return web.json_response(
        {
            "model": model,
            "embeddings": [content.embedding(t, dims) for t in texts],
            "total_duration": _LOAD_NS + tokens * _PROMPT_TOKEN_NS,
            "load_duration": _LOAD_NS,
            "prompt_eval_count": tokens,
        }
    )
