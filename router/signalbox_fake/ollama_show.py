"""Ollama's ``POST /api/show``: one model's details, capabilities and context length.

What a model can do is read from its name, so a test can pick it: ``embed`` in the name makes
an embedding model; ``llava`` or ``vision`` a chat model that reads images; any other name a
chat model that calls tools (``think`` in the name adds thinking). The context length sits in
``model_info`` under ``<architecture>.context_length``, as Ollama reports it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from signalbox_fake import wire

CONTEXT = {"llama": 131_072, "qwen": 32_768, "nomic": 8192}
DEFAULT_CONTEXT = 4096


def capabilities(model: str) -> list[str]:
    name = model.lower()
    if "embed" in name:
        return ["embedding"]
    out = ["completion"]
    out += ["vision"] if "llava" in name or "vision" in name else ["tools"]
    out += ["thinking"] if "think" in name else []
    return out


def describe(model: str, family: str) -> dict[str, Any]:
    arch = family if family in CONTEXT else "llama"
    return {
        "license": "",
        "modelfile": f"FROM {model}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": family, "families": [family]},
        "model_info": {
            "general.architecture": arch,
            "general.parameter_count": 8_030_261_248,
            f"{arch}.context_length": CONTEXT.get(family, DEFAULT_CONTEXT),
            f"{arch}.embedding_length": 4096,
        },
        "capabilities": capabilities(model),
        "modified_at": "2026-01-01T00:00:00Z",
    }


async def show(request: web.Request) -> web.Response:
    state = wire.state_of(request)
    body = await wire.json_body(request)
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise wire.BadRequest("model is required")
    if name not in state.models and name.removesuffix(":latest") not in state.models:
        raise wire.BadRequest(f"model '{name}' not found", 404)
    letters = "".join(c for c in name.lower().split(":")[0] if c.isalpha())
    family = next((f for f in CONTEXT if letters.startswith(f)), "llama")
    return web.json_response(describe(name, family))
