"""The OpenAI side of every translation: completion, chunk, usage and error bodies.

Each provider module reads its own format and writes OpenAI's through these helpers, so every
translated response has the same shape as one from OpenAI itself (and validates against the
``openai`` SDK's types), whichever provider produced it. Also holds the request-side helpers
that read OpenAI message content, and the errors translation raises.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

JSON = dict[str, Any]


class TranslationError(ValueError):
    """The OpenAI request uses something the target provider cannot express (answer a 400)."""


class UpstreamStreamError(Exception):
    """The provider reported an error in the middle of a stream; ``kind`` is its error type."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class TokenUsage(NamedTuple):
    prompt: int
    completion: int


MAX_TOKENS = 10**9  # no one request counts a billion tokens: a larger count is a broken upstream


def token_count(value: Any) -> int:
    """A token count an upstream reported (0 when absent). ValueError unless it is a whole
    number from 0 to ``MAX_TOKENS``, so no counter, limiter or cost can go negative or
    overflow on what an upstream says."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_TOKENS:  # bool is no count either
        raise ValueError("usage token counts are not whole numbers from 0 to 10**9")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage_body(usage: TokenUsage, cached: int | None = None) -> JSON:
    body: JSON = {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
    }
    if cached is not None:
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    return body


def completion_body(
    *, cid: str, created: int, model: str, message: JSON, finish_reason: str, usage: JSON
) -> JSON:
    """A ``chat.completion`` with one choice."""
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def assistant_message(text: str, tool_calls: list[JSON]) -> JSON:
    """OpenAI leaves ``content`` null when the model only called tools."""
    message: JSON = {"role": "assistant", "content": text or (None if tool_calls else "")}
    message["refusal"] = None
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_call(call_id: str, name: str, arguments: str) -> JSON:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ChunkWriter:
    """Builds the ``chat.completion.chunk`` payloads of one stream, sharing id and timestamp."""

    def __init__(self, model: str, include_usage: bool, *, cid: str, created: int) -> None:
        self.model = model
        self.include_usage = include_usage
        self.cid = cid
        self.created = created
        self.started = False

    def _chunk(self, choices: list[JSON]) -> JSON:
        chunk: JSON = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None  # OpenAI sends null on every chunk but the usage one
        return chunk

    def delta(self, delta: JSON, finish_reason: str | None = None) -> list[JSON]:
        """The role chunk first if not sent yet, then one chunk carrying ``delta``."""
        out = self.start()
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        out.append(self._chunk([choice]))
        return out

    def start(self) -> list[JSON]:
        if self.started:
            return []
        self.started = True
        delta = {"role": "assistant", "content": "", "refusal": None}
        return [
            self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        ]

    def content(self, text: str) -> list[JSON]:
        return self.delta({"content": text}) if text else self.start()

    def tool_call_start(self, index: int, call_id: str, name: str, arguments: str) -> list[JSON]:
        function = {"name": name, "arguments": arguments}
        call = {"index": index, "id": call_id, "type": "function", "function": function}
        return self.delta({"tool_calls": [call]})

    def tool_arguments(self, index: int, fragment: str) -> list[JSON]:
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, finish_reason: str, usage: JSON) -> list[JSON]:
        """The closing chunk, then (when asked for) the usage chunk with no choices."""
        out = self.delta({}, finish_reason)
        if self.include_usage:
            last = self._chunk([])
            last["usage"] = usage
            out.append(last)
        return out


def chunk_text_chars(chunk: Mapping[str, Any]) -> int:
    """Characters of answer text in one chat completion chunk (for an estimate of its tokens
    when the upstream sends no usage)."""
    return sum(delta_text_chars(choice.get("delta")) for choice in chunk.get("choices") or ())


def carries_token(choice: Mapping[str, Any]) -> bool:
    """Whether one streamed choice carries something a client can use: text (of the answer,
    its reasoning or a refusal), a tool call, or its finish. A role alone does not: the router
    commits to a stream only at its first such choice, and fails over before it."""
    if choice.get("finish_reason") is not None or choice.get("text"):
        return True
    delta = choice.get("delta")
    if type(delta) is not dict:
        return False
    return any(delta.get(key) for key in _TOKEN_KEYS)


_TOKEN_KEYS = (
    "content",
    "tool_calls",
    "function_call",
    "reasoning_content",
    "reasoning",
    "refusal",
)


def delta_text_chars(delta: Any) -> int:
    """Characters of answer text in one streamed delta: its content and its pieces of tool-call
    arguments. Never a call's id or name, which some servers (llama.cpp's) repeat in every
    delta where OpenAI sends them once."""
    if type(delta) is not dict:
        return 0
    text = delta.get("content")
    total = len(text) if type(text) is str else 0
    calls = delta.get("tool_calls")
    for call in calls if type(calls) is list else ():
        function = call.get("function") if type(call) is dict else None
        arguments = function.get("arguments") if type(function) is dict else None
        total += len(arguments) if type(arguments) is str else 0
    return total


def text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_part_text(part) for part in content)
    raise TranslationError("message content must be a string or a list of content parts")


def _part_text(part: Any) -> str:
    if isinstance(part, Mapping) and part.get("type") in ("text", "refusal"):
        value = part.get(str(part["type"]))
        if isinstance(value, str):
            return value
    kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
    raise TranslationError(f"content part of type {kind!r} is not supported here")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a ``data:`` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, comma, payload = url.removeprefix("data:").partition(",")
    if not comma:
        raise TranslationError("malformed data: URL (no comma)")
    params = [p.strip().lower() for p in header.split(";")]
    media_type = params[0] or "text/plain"
    if "base64" in params[1:]:
        data = "".join(payload.split())
    else:
        data = base64.b64encode(unquote_to_bytes(payload)).decode()
    return media_type, data


def error_body(message: str, kind: str, code: str | None) -> JSON:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def kind_for_status(status: int) -> tuple[str, str | None]:
    """OpenAI's error type and code for an HTTP status, when the provider gave no usable type."""
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 404:
        return "invalid_request_error", "model_not_found"
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


class InvalidRequest(ValueError):
    """The body is not a request of the client's API that the router can serve; ``param``
    names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def note_finishes(chunk: Mapping[str, Any], reasons: list[str]) -> None:
    """Add the finish reasons of a translated chat chunk's choices to ``reasons``."""
    for choice in chunk.get("choices") or ():
        reason = choice.get("finish_reason")
        if type(reason) is str:
            reasons.append(reason)
