"""Token counts the router works out itself: before a request is sent (for token-per-minute
limits), and after an answer whose upstream sent no usage (for metering, marked as estimated).

About four characters a token, a flat count for images and audio, a small overhead per
message, plus the completion budget the request asks for; the upstream's usage corrects the
estimate once the answer is in. When the upstream sends no usage at all (llama.cpp's server
ignores ``stream_options.include_usage``), ``estimated_usage`` counts the prompt the same way
and the answer's text (content and tool-call arguments) at about four characters a token, or
one token per streamed text chunk when that is more (servers that stream token by token:
llama.cpp, vLLM, Ollama).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson

_MESSAGE_OVERHEAD, _REPLY_OVERHEAD = 4, 3  # tokens of a message's role and separators; the reply
_DEFAULT_COMPLETION = 256  # completion budget of a request without max_tokens
_NON_TEXT_PART = 85  # an image or audio content part, counted flat


def _text_tokens(value: object) -> int:
    """About 4 characters a token for a string, its text for a content part, else nothing."""
    if isinstance(value, dict):  # a content part
        text = value.get("text")
        return _text_tokens(text) if isinstance(text, str) else _NON_TEXT_PART
    if isinstance(value, list):
        return sum(_text_tokens(part) for part in value if isinstance(part, str | dict))
    return -(-len(value) // 4) if isinstance(value, str) else 0


def _message_tokens(message: object) -> int:
    if not isinstance(message, dict):
        return 0
    total = _MESSAGE_OVERHEAD + _text_tokens(message.get("content"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += _text_tokens(function.get("name")) + _text_tokens(function.get("arguments"))
    return total


def _input_tokens(value: object) -> int:
    """A prompt or embeddings input: a string, strings, token ids or lists of token ids."""
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(item, int) for item in items):
        return len(items)
    strings = [i for i in items if isinstance(i, str)]
    return sum(map(_text_tokens, strings)) + sum(len(i) for i in items if isinstance(i, list))


def _completion_budget(body: Mapping[str, object]) -> int:
    n = body.get("n")
    copies = n if isinstance(n, int) and n >= 1 else 1
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value * copies
    return _DEFAULT_COMPLETION * copies


def prompt_tokens(body: Mapping[str, object]) -> int:
    """About how many tokens the request's prompt (or embeddings input) is; see the module."""
    if "input" in body and "messages" not in body:
        return _input_tokens(body["input"])
    messages = body.get("messages")
    prompt = sum(_message_tokens(m) for m in messages) if isinstance(messages, list) else 0
    return _REPLY_OVERHEAD + prompt + _input_tokens(body.get("prompt"))


def estimated_usage(
    body: Mapping[str, object], text_chars: int, text_chunks: int = 0
) -> tuple[int, int]:
    """Prompt and completion tokens of an answer whose upstream sent no usage: the prompt as
    ``prompt_tokens`` counts it; the completion from the ``text_chars`` characters of answer text
    (about 4 a token), or ``text_chunks`` streamed text chunks (about one token each) when that
    is more. Never (0, 0) for a chat: the reply overhead alone counts."""
    completion = max(math.ceil(text_chars / 4), text_chunks)
    return prompt_tokens(body), completion


def answer_usage(body: Mapping[str, object], answer: bytes) -> tuple[int, int]:
    """``estimated_usage`` of a complete OpenAI-shaped answer (JSON bytes) to ``body``."""
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        parsed = None
    return estimated_usage(body, answer_text_chars(parsed) if isinstance(parsed, dict) else 0)


def answer_text_chars(answer: Mapping[str, object]) -> int:
    """Characters of text in a complete OpenAI-shaped answer: each choice's content and
    tool-call arguments, or a text completion's text (nothing for embeddings)."""
    total = 0
    choices = answer.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(choice, dict):
            total += _text_chars(choice.get("text"))
        if isinstance(message, dict):
            total += _text_chars(message.get("content"))
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    total += _text_chars(function.get("arguments"))
    return total


def _text_chars(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


def estimate_tokens(body: Mapping[str, object]) -> int:
    """A cheap estimate of a request's tokens, in plus out, before it is sent.

    About 4 characters a token over message contents (strings and text parts; other parts count
    85 each) and tool-call arguments, 4 tokens per message and 3 for the reply, plus the completion
    budget: ``max_completion_tokens``, else ``max_tokens``, else 256, times ``n``. Embeddings count
    their input only. Malformed fields count as nothing rather than raising.
    """
    if "input" in body and "messages" not in body:
        return _input_tokens(body["input"])
    return prompt_tokens(body) + _completion_budget(body)
