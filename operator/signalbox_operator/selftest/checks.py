"""The checks of the provider test suite (``selftest``), one small request each.

Each check sends its request through a :class:`Caller` (the suite, which speaks the provider's
dialect and hands back answers in OpenAI's shape) and raises :class:`Failed` with a message safe
to show when the answer is wrong: no text, no tool call, not JSON, no embedding.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from signalbox_providers.dialects import Kind

PROMPT = "Reply with the single word: ok."
# 8x8 red PNG.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAF"
    "WEXHgYAEH8H+ZKLvUwAAAAASUVORK5CYII="
)
TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Failed(Exception):
    """A check's verdict: the answer was wrong or missing (the message is safe to show)."""


class Caller(Protocol):
    async def call(self, kind: Kind, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request; the answer in OpenAI's shape, or Failed."""

    async def stream(self, model: str) -> int | None:
        """One streamed chat; milliseconds to the first token, or Failed."""


def user(text: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *extra]}]


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise Failed("the answer has no message") from exc
    if not isinstance(message, dict):
        raise Failed("the answer has no message")
    return message


async def _chat(s: Caller, model: str) -> None:
    message = _message(await s.call("chat", model, {"messages": user(PROMPT), "max_tokens": 16}))
    if not isinstance(message.get("content"), str) or not message["content"]:
        raise Failed("the answer has no text")


async def _stream(s: Caller, model: str) -> int | None:
    return await s.stream(model)


async def _tools(s: Caller, model: str) -> None:
    body = {
        "messages": user("What time is it in Oslo? Use the tool."),
        "tools": [TOOL],
        "tool_choice": "required",
        "max_tokens": 64,
    }
    calls = _message(await s.call("chat", model, body)).get("tool_calls")
    if not isinstance(calls, list) or not calls:
        raise Failed("the model called no tool")
    arguments = (
        calls[0].get("function", {}).get("arguments") if isinstance(calls[0], dict) else None
    )
    try:
        json.loads(arguments if isinstance(arguments, str) else "")
    except ValueError as exc:
        raise Failed("the tool call's arguments are not JSON") from exc


async def _json_mode(s: Caller, model: str) -> None:
    body = {
        "messages": user('Answer with a JSON object like {"ok": true}.'),
        "response_format": {"type": "json_object"},
        "max_tokens": 32,
    }
    content = _message(await s.call("chat", model, body)).get("content")
    try:
        value = json.loads(content if isinstance(content, str) else "")
    except ValueError as exc:
        raise Failed("the answer is not JSON") from exc
    if not isinstance(value, dict):
        raise Failed("the answer is JSON but not an object")


async def _vision(s: Caller, model: str) -> None:
    image = {"type": "image_url", "image_url": {"url": PIXEL}}
    body = {"messages": user("What colour is this image?", image), "max_tokens": 16}
    _message(await s.call("chat", model, body))


async def _embeddings(s: Caller, model: str) -> None:
    answer = await s.call("embeddings", model, {"input": "signal box"})
    try:
        vector = answer["data"][0]["embedding"]
    except (KeyError, IndexError, TypeError) as exc:
        raise Failed("the answer has no embedding") from exc
    if not isinstance(vector, list) or not vector:
        raise Failed("the embedding is empty")


CHECKS: dict[str, Callable[[Caller, str], Awaitable[int | None]]] = {
    "chat": _chat,
    "streaming": _stream,
    "tools": _tools,
    "jsonMode": _json_mode,
    "vision": _vision,
    "embeddings": _embeddings,
}
