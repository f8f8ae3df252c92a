"""How many tokens a request may use, estimated before it is sent, for token-per-minute limits.

About four characters a token, a flat count for images and audio, a small overhead per
message, plus the completion budget the request asks for; the upstream's usage corrects the
estimate once the answer is in.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def estimate_tokens(body: Mapping[str, object]) -> int:
    """A cheap estimate of a request's tokens, in plus out, before it is sent.

    About 4 characters a token over message contents (strings and text parts; other parts count
    85 each) and tool-call arguments, 4 tokens per message and 3 for the reply, plus the completion
    budget: ``max_completion_tokens``, else ``max_tokens``, else 256, times ``n``. Embeddings count
    their input only. Malformed fields count as nothing rather than raising.
    """
    if "input" in body and "messages" not in body:
        return _input_tokens(body["input"])
    messages = body.get("messages")
    prompt = sum(_message_tokens(m) for m in messages) if isinstance(messages, list) else 0
    prompt += _input_tokens(body.get("prompt"))  # legacy completions
    return _REPLY_OVERHEAD + prompt + _completion_budget(body)
