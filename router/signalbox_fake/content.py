"""Deterministic content for the fake provider: replies, token counts, tool arguments, vectors.

Pure functions, so a test can predict every byte the fake provider sends.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from typing import Any

JSON = dict[str, Any]


def count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def text_of(content: Any) -> str:
    """Plain text of a message content: a string or a list of typed parts (OpenAI/Anthropic)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return " ".join(t for t in parts if isinstance(t, str))
    return str(content)


def count_images(messages: Iterable[Mapping[str, Any]]) -> int:
    """Image parts across messages, in any of the three wire formats."""
    total = 0
    for msg in messages:
        total += len(msg.get("images") or [])
        content = msg.get("content")
        if isinstance(content, list):
            total += sum(
                1
                for p in content
                if isinstance(p, Mapping) and p.get("type") in ("image_url", "image")
            )
    return total


def prompt_tokens(messages: Iterable[Mapping[str, Any]], system: Any = None) -> int:
    """Prompt size: words of every message plus a few tokens of framing per message."""
    msgs = list(messages)
    words = sum(count_tokens(text_of(m.get("content"))) for m in msgs)
    return words + 3 * len(msgs) + count_tokens(text_of(system)) + 85 * count_images(msgs)


def reply_words(name: str, last_user_text: str, images: int, words: int | None) -> list[str]:
    """The reply as words: an echo of the last user message, or exactly ``words`` words."""
    if words is not None:
        return [f"w{i}" for i in range(words)]
    seen = f" I see {images} image(s)." if images else ""
    echo = " ".join(last_user_text.split()[:32])
    return f"Hello from {name}.{seen} You said: {echo}".split()


def join_words(words: list[str]) -> list[str]:
    """Words as stream pieces that concatenate back to the reply text."""
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def sample_for_schema(schema: Mapping[str, Any] | None) -> Any:
    """A small value that satisfies a JSON schema: used for tool arguments and JSON output."""
    if not schema:
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties") or {}
        return {key: sample_for_schema(sub) for key, sub in props.items()}
    if kind == "array":
        return [sample_for_schema(schema.get("items") or {"type": "string"})]
    return _SCALAR_SAMPLES.get(kind, "example")


_SCALAR_SAMPLES: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "null": None,
}


def arguments_json(schema: Mapping[str, Any] | None) -> str:
    return json.dumps(sample_for_schema(schema), separators=(",", ":"))


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit-free deterministic vector derived from the text's hash."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    return [round(v, 6) for v in out[:dimensions]]


def pack_float32(vector: list[float]) -> bytes:
    """Little-endian float32, as OpenAI's base64 embedding encoding carries it."""
    return struct.pack(f"<{len(vector)}f", *vector)


def split_chunks(text: str, pieces: int) -> list[str]:
    """``text`` cut into ``pieces`` roughly equal fragments (for streamed tool arguments)."""
    if pieces <= 1 or len(text) <= 1:
        return [text]
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]
