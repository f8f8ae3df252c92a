"""Where llama.cpp's OpenAI-compatible server (llama-cpp-python 0.3.36) differs from OpenAI's API,
so the fake's ``llamacpp`` flavor behaves like the real server (checked side by side by
tests/integration/inference/test_conformance.py):

* ``stream_options.include_usage`` is ignored: a stream never carries usage;
* a request for a model the server does not serve is answered by its first (default) model;
* a prompt that does not fit the context window (512 tokens here) is a 400 with OpenAI's
  ``context_length_exceeded`` error body;
* ``/v1/models`` items are owned by ``me`` and carry an empty ``permissions`` list.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from signalbox_providers.fake import errors
from signalbox_providers.fake.state import FakeState

CONTEXT = 512


def model(state: FakeState, body: dict[str, Any]) -> str:
    """The model that answers: the one asked for when served, else the default (the first)."""
    asked = body.get("model")
    return asked if isinstance(asked, str) and asked in state.models else state.models[0]


def too_long(prompt_tokens: int, max_tokens: int | None) -> web.Response | None:
    """The 400 the server sends when the prompt fills the context window, else None."""
    if prompt_tokens < CONTEXT:
        return None
    message = (
        f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
        f"{prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the messages, "
        f"{max_tokens or 0} in the completion). Please reduce the length of the messages or "
        "completion."
    )
    body = errors.openai_body(400, message, "messages")
    body["error"]["code"] = "context_length_exceeded"
    return errors.respond(body, 400)


def list_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "object": "model", "owned_by": "me", "permissions": []}
