"""The OpenAI wire format: /v1/models, /v1/chat/completions (plain and SSE), /v1/embeddings.

Also what vLLM, LocalAI and Ollama's OpenAI-compatible routes speak.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from aiohttp import web

from signalbox_fake import content, llamacpp, reply, wire
from signalbox_fake.state import FakeState, Flavor

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def routes(prefix: str = "/v1") -> list[web.RouteDef]:
    return [
        web.get(f"{prefix}/models", list_models),
        web.post(f"{prefix}/chat/completions", chat_completions),
        web.post(f"{prefix}/embeddings", embeddings),
    ]


async def list_models(request: web.Request) -> web.Response:
    state = wire.state_of(request)
    owner = {"vllm": "vllm", "ollama": "library", "localai": "localai"}.get(state.flavor, "system")
    data = []
    for model in state.models:
        item: dict[str, Any] = {
            "id": model,
            "object": "model",
            "created": state.created,
            "owned_by": owner,
        }
        if state.flavor == Flavor.VLLM:
            item.update(root=model, parent=None, max_model_len=32768, permission=[])
        data.append(llamacpp.list_item(item) if state.flavor == Flavor.LLAMACPP else item)
    return web.json_response({"object": "list", "data": data})


def to_prompt(body: dict[str, Any]) -> reply.Prompt:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise wire.BadRequest("'messages' must be a non-empty array")
    for i, msg in enumerate(messages):
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("role"), str)
            or msg["role"] not in _ROLES
        ):
            raise wire.BadRequest(f"Invalid value for 'messages[{i}].role'")
    users = [m for m in messages if m["role"] == "user"]
    tools = tuple(
        reply.Tool(name=t["function"]["name"], schema=t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    fmt = body.get("response_format") or {}
    stop = body.get("stop") or ()
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise wire.BadRequest("Invalid 'max_tokens': integer below minimum value 1")
    return reply.Prompt(
        last_user_text=content.text_of(users[-1].get("content")) if users else "",
        prompt_tokens=content.prompt_tokens(messages),
        images=content.count_images(messages),
        after_tool_result=messages[-1]["role"] == "tool",
        tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
        max_tokens=max_tokens,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        json_schema=(fmt.get("json_schema") or {}).get("schema")
        if fmt.get("type") == "json_schema"
        else None,
        json_object=fmt.get("type") == "json_object",
    )


def usage(r: reply.Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    }


def _tool_calls(r: reply.Reply) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in r.tool_calls
    ]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _chat(request, await wire.json_body(request))


async def _chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    state = wire.state_of(request)
    llama = state.flavor == Flavor.LLAMACPP
    model = llamacpp.model(state, body) if llama else wire.require_model(state, body)
    prompt = to_prompt(body)
    refused = llamacpp.too_long(prompt.prompt_tokens, prompt.max_tokens) if llama else None
    if refused is not None:
        return refused
    r = reply.plan(prompt, state.name, state.faults.reply_words)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.get("stream"):
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = stream_chunks(state, cid, model, r, asked and not llama)
        resp = await wire.start_stream(request, "text/event-stream")
        await wire.send_chunks(request, resp, chunks)
        return resp
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None, "refusal": None}
    if r.tool_calls:
        message["tool_calls"] = _tool_calls(r)
        if llama:
            message = llamacpp.tool_message(r, cid)
    return web.json_response(
        {
            "id": cid,
            "object": "chat.completion",
            "created": wire.now(),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": r.finish}
            ],
            "usage": usage(r),
            "system_fingerprint": f"fp_{state.name}",
        }
    )


def stream_chunks(
    state: FakeState, cid: str, model: str, r: reply.Reply, include_usage: bool
) -> list[bytes]:
    created = wire.now()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": f"fp_{state.name}",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return wire.sse_data(payload)

    if state.flavor == Flavor.LLAMACPP and r.tool_calls:
        *deltas, last = llamacpp.tool_deltas(r, cid)
        return [*map(chunk, deltas), chunk(last, r.finish), wire.sse_data("[DONE]")]
    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": piece}) for piece in r.pieces]
    for i, call in enumerate(r.tool_calls):
        head = {
            "index": i,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [head]}))
        out += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
            for part in content.split_chunks(call.arguments, 3)
        ]
    out.append(chunk({}, r.finish))
    if include_usage:
        out.append(
            wire.sse_data(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": f"fp_{state.name}",
                    "choices": [],
                    "usage": usage(r),
                }
            )
        )
    out.append(wire.sse_data("[DONE]"))
    return out


async def embeddings(request: web.Request) -> web.Response:
    return await _embeddings(request, await wire.json_body(request))


async def _embeddings(request: web.Request, body: dict[str, Any]) -> web.Response:
    state = wire.state_of(request)
    if state.flavor == Flavor.LLAMACPP:
        model = llamacpp.model(state, body)
    else:
        model = wire.require_model(state, body)
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise wire.BadRequest("'input' must be a string or a non-empty array")
    texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
    dims = body.get("dimensions") or 8
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        raise wire.BadRequest("'dimensions' must be an integer between 1 and 4096")
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = content.embedding(text, dims)
        value: Any = base64.b64encode(content.pack_float32(vector)).decode() if b64 else vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(content.count_tokens(t) for t in texts)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


# -- Azure OpenAI: deployments in the path, api-version in the query, key in api-key ----------


def azure_routes() -> list[web.RouteDef]:
    return [
        web.get("/openai/models", _azure_models),
        web.post("/openai/deployments/{deployment}/chat/completions", _azure_chat),
        web.post("/openai/deployments/{deployment}/embeddings", _azure_embeddings),
    ]


def _azure_body(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    if not request.query.get("api-version"):
        raise wire.BadRequest("Missing required query parameter: api-version")
    deployment = request.match_info.get("deployment")
    return {**body, "model": deployment} if deployment else body


async def _azure_models(request: web.Request) -> web.Response:
    _azure_body(request, {})  # checks api-version
    return await list_models(request)


async def _azure_chat(request: web.Request) -> web.StreamResponse:
    return await _chat(request, _azure_body(request, await wire.json_body(request)))


async def _azure_embeddings(request: web.Request) -> web.Response:
    return await _embeddings(request, _azure_body(request, await wire.json_body(request)))
