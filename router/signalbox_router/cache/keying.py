"""What the response cache may keep and find, decided without I/O: the key of a request, whether
an answer may be kept, and a kept answer replayed as a stream.

Only a deterministic request (``temperature: 0`` or a ``seed``) has a key: any other would be
answered differently each time, and the cache would change what clients see. The key is a hash
of the client's API key and of the request as sent, less what does not change the answer
(``stream``, ``stream_options``, ``user``), with object keys sorted; so tenants never share an
entry, and a streamed and a plain request share one. Only a complete answer is kept: status 200,
and every choice finished with ``stop`` or ``tool_calls`` (never ``length``: a truncated answer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

_IGNORED = frozenset({"stream", "stream_options", "user"})
_COMPLETE = frozenset({"stop", "tool_calls"})
DONE = b"data: [DONE]\n\n"


def sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def deterministic(body: Mapping[str, Any]) -> bool:
    temperature, seed = body.get("temperature"), body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return True
    return (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and (temperature == 0)
    )


def key(client_key: bytes, body: Mapping[str, Any]) -> str:
    """The entry's name: the client key's hash, then the request's (hex)."""
    kept = {k: v for k, v in body.items() if k not in _IGNORED}
    request = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
    tenant = hashlib.sha256(b"signalbox-tenant\0" + client_key).digest()
    return hashlib.sha256(tenant + request).hexdigest()


def keepable(status: int, answer: bytes) -> dict[str, Any] | None:
    """The parsed answer when it may be kept, else None."""
    if status != 200:
        return None
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    choices = parsed.get("choices") if isinstance(parsed, dict) else None
    if not isinstance(choices, list) or not choices:
        return None
    finished = all(isinstance(c, dict) and c.get("finish_reason") in _COMPLETE for c in choices)
    return parsed if finished else None


def usage(answer: Mapping[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens an answer reports; zeros when it reports none."""
    found = answer.get("usage")
    if not isinstance(found, dict):
        return 0, 0
    prompt, completion = found.get("prompt_tokens"), found.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )


def replay(answer: Mapping[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A kept ``chat.completion`` as the OpenAI stream of it: per choice, one chunk with the
    whole message and one with its finish reason; then usage if asked for; then ``[DONE]``."""
    base = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }
    for choice in answer.get("choices", []):
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls)]
        index = choice.get("index", 0)
        yield sse({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        yield sse({**base, "choices": [finish]})
    if include_usage and isinstance(answer.get("usage"), dict):
        yield sse({**base, "choices": [], "usage": answer["usage"]})
    yield DONE
