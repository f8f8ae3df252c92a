"""Where llama.cpp's OpenAI-compatible server (llama-cpp-python 0.3.36) differs from OpenAI's API,
so the fake's ``llamacpp`` flavor behaves like the real server (checked side by side by
tests/dataplane/inference/test_conformance.py):

* ``stream_options.include_usage`` is ignored: a stream never carries usage;
* a request for a model the server does not serve is answered by its first (default) model;
* a prompt that does not fit the context window (512 tokens here) is a 400 with OpenAI's
  ``context_length_exceeded`` error body;
* ``/v1/models`` items are owned by ``me`` and carry an empty ``permissions`` list;
* a tool call (what its ``chatml-function-calling`` chat format answers to a forced
  ``tool_choice``) is one call whose id is ``call__0_<name>_cmpl-…``, mirrored in the legacy
  ``function_call``, with ``content`` null and no ``refusal`` key. Streamed, the first delta
  holds ``role`` and null ``content``, ``function_call`` and ``tool_calls``; every later delta
  repeats the call's id, type and name beside its piece of the arguments (OpenAI sends them
  once); the last delta has all four keys null beside ``finish_reason`` ``tool_calls``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from signalbox_fake import content, errors, reply
from signalbox_fake.state import FakeState

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


def call_id(name: str, cid: str) -> str:
    """The id the server gives its (only) tool call; ``cid`` is the ``chatcmpl-…`` answer id."""
    return f"call__0_{name}_{cid.removeprefix('chat')}"


def tool_message(r: reply.Reply, cid: str) -> dict[str, Any]:
    """The message of a tool-call answer (``r`` has one call)."""
    [call] = r.tool_calls
    function = {"name": call.name, "arguments": call.arguments}
    calls = [{"id": call_id(call.name, cid), "type": "function", "function": function}]
    return {"content": None, "tool_calls": calls, "role": "assistant", "function_call": function}


_EMPTY = {"role": None, "content": None, "function_call": None, "tool_calls": None}


def tool_deltas(r: reply.Reply, cid: str) -> list[dict[str, Any]]:
    """The deltas of a streamed tool-call answer, the first and the last included."""
    [call] = r.tool_calls
    head = {"id": call_id(call.name, cid), "type": "function"}
    out: list[dict[str, Any]] = [{**_EMPTY, "role": "assistant"}]
    for piece in content.split_chunks(call.arguments, 4):
        function = {"name": call.name, "arguments": piece}
        calls = [{"index": 0, **head, "function": function}]
        out.append({**_EMPTY, "function_call": function, "tool_calls": calls})
    return [*out, _EMPTY]
