"""Keeps Secret values out of what the router passes on from upstreams.

An upstream may echo the key it was sent (in an error message, or in an answer a prompt talked
it into). Every answer body, stream event and message that reaches a client from a provider
goes through ``redact`` with every Secret value the router holds, not only the provider's own,
before the response cache or the client sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

MASK = "[REDACTED]"
_MASK = MASK.encode()
MAX_MESSAGE = 500  # characters of an upstream's message passed on to a client
MIN_SECRET = 4  # shorter values would mask ordinary words and cannot be secret anyway


def redact(data: bytes, secrets: Iterable[bytes]) -> bytes:
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, _MASK)
    return data


# A JSON escape of a character that never needs one (a letter, a digit, ``-``, ``.``, ``_``):
# an upstream could spell a key with them, and unescaping them keeps the JSON as it was.
_NEEDLESS_ESCAPE = re.compile(rb"\\u00(2[de]|3[0-9]|4[1-9a-fA-F]|5[0-9aAfF]|6[1-9a-fA-F]|7[0-9aA])")


def redact_answer(data: bytes, secrets: Iterable[bytes]) -> bytes:
    """An answer body or stream event with every secret masked, also one spelled with JSON
    escapes (those are unescaped first: the JSON means the same). A key split across two
    stream events is not seen whole by either."""
    secrets = tuple(secrets)
    if secrets and b"\\u00" in data:
        data = _NEEDLESS_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    return redact(data, secrets)


def redact_text(text: str, secrets: Iterable[bytes], limit: int = MAX_MESSAGE) -> str:
    """``text`` with every secret masked, then cut to ``limit`` characters: masked first, as a
    cut could leave the start of a secret that no longer matches whole."""
    masked = redact(text.encode(errors="replace"), secrets).decode(errors="replace")
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def secret_values(keys: Iterable[str | None]) -> tuple[bytes, ...]:
    """The byte forms to mask, longest first (so a key holding another is masked whole): each
    key as it is, and as it stands inside JSON text (where a quote or backslash in it is
    escaped), since upstream bodies are masked as JSON."""
    found: set[bytes] = set()
    for k in keys:
        if k and len(k) >= MIN_SECRET:
            found |= {k.encode(), orjson.dumps(k)[1:-1]}
    return tuple(sorted(found, key=len, reverse=True))
