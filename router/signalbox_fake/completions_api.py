"""The legacy text completions route, ``POST /v1/completions`` (plain and SSE), as OpenAI,
vLLM, LocalAI and Ollama's OpenAI-compatible API serve it: a ``prompt`` in, ``choices[].text``
out, and ``text_completion`` chunks ending in ``[DONE]`` when streamed."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from signalbox_fake import content, openai_api, reply, wire


def routes(prefix: str = "/v1") -> list[web.RouteDef]:
    return [web.post(f"{prefix}/completions", completions)]


def to_prompt(body: dict[str, Any]) -> reply.Prompt:
    raw = body.get("prompt")
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        raw = raw[0]
    if not isinstance(raw, str):
        raise wire.BadRequest("'prompt' must be a string (this server takes one prompt)")
    stop = body.get("stop") or ()
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise wire.BadRequest("Invalid 'max_tokens': integer below minimum value 1")
    return reply.Prompt(
        last_user_text=raw,
        prompt_tokens=content.count_tokens(raw),
        max_tokens=max_tokens,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
    )


async def completions(request: web.Request) -> web.StreamResponse:
    body = await wire.json_body(request)
    state = wire.state_of(request)
    model = wire.require_model(state, body)
    r = reply.plan(to_prompt(body), state.name, state.faults.reply_words)
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    created = wire.now()

    def payload(choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    def choice(text: str, finish: str | None) -> dict[str, Any]:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    if not body.get("stream"):
        return web.json_response(payload([choice(r.text, r.finish)], openai_api.usage(r)))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunks = [wire.sse_data(payload([choice(piece, None)], None)) for piece in r.pieces]
    chunks.append(wire.sse_data(payload([choice("", r.finish)], None)))
    if include_usage:
        chunks.append(wire.sse_data(payload([], openai_api.usage(r))))
    chunks.append(wire.sse_data("[DONE]"))
    resp = await wire.start_stream(request, "text/event-stream")
    await wire.send_chunks(request, resp, chunks)
    return resp
