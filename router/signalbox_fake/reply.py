"""Plans what the fake model answers, independent of wire format.

Each wire module turns its request into a ``Prompt`` and renders the returned ``Reply`` in its
own shape (OpenAI chunks, Anthropic events, Ollama NDJSON).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from signalbox_fake import content

Finish = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class Tool:
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Prompt:
    last_user_text: str
    prompt_tokens: int
    images: int = 0
    after_tool_result: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None  # "auto", "none", "required", or a tool name
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    json_object: bool = False


@dataclass(frozen=True)
class Reply:
    pieces: list[str]
    finish: Finish
    prompt_tokens: int
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        args = sum(content.count_tokens(c.arguments) + 1 for c in self.tool_calls)
        return len(self.pieces) + args


def plan(prompt: Prompt, name: str, words: int | None) -> Reply:
    """The answer to ``prompt`` from the fake model called ``name``."""
    call = _tool_to_call(prompt)
    if call is not None:
        args = content.arguments_json(call.schema)
        tool_call = ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=call.name, arguments=args)
        return Reply(
            pieces=[],
            finish="tool_calls",
            prompt_tokens=prompt.prompt_tokens,
            tool_calls=[tool_call],
        )
    if prompt.json_schema is not None or prompt.json_object:
        value = (
            content.sample_for_schema(prompt.json_schema)
            if prompt.json_schema is not None
            else {"reply": " ".join(content.reply_words(name, prompt.last_user_text, 0, None))}
        )
        return Reply(pieces=[json.dumps(value)], finish="stop", prompt_tokens=prompt.prompt_tokens)
    all_words = content.reply_words(name, prompt.last_user_text, prompt.images, words)
    finish: Finish = "stop"
    stop_sequence = None
    for i, word in enumerate(all_words):
        hit = next((s for s in prompt.stop if s and s in word), None)
        if hit is not None:
            all_words, stop_sequence = all_words[:i], hit
            break
    if prompt.max_tokens is not None and len(all_words) > prompt.max_tokens:
        all_words, finish = all_words[: prompt.max_tokens], "length"
    return Reply(
        pieces=content.join_words(all_words),
        finish=finish,
        prompt_tokens=prompt.prompt_tokens,
        stop_sequence=stop_sequence,
    )


def _tool_to_call(prompt: Prompt) -> Tool | None:
    if not prompt.tools or prompt.after_tool_result or prompt.tool_choice == "none":
        return None
    if prompt.tool_choice not in (None, "auto", "required", "any"):
        return next((t for t in prompt.tools if t.name == prompt.tool_choice), None)
    return prompt.tools[0]
