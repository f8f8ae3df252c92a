"""Keeps Secret values out of what the router passes on from upstreams.

An upstream may echo the key it was sent (in an error message, say). Every answer body and
message that reaches a client from a provider goes through ``redact`` with every Secret value
the router holds, not only the provider's own.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "[REDACTED]"
_MASK = MASK.encode()
MIN_SECRET = 4  # shorter values would mask ordinary words and cannot be secret anyway


def redact(data: bytes, secrets: Iterable[bytes]) -> bytes:
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, _MASK)
    return data


def redact_text(text: str, secrets: Iterable[bytes]) -> str:
    return redact(text.encode(), secrets).decode()


def secret_values(keys: Iterable[str | None]) -> tuple[bytes, ...]:
    """The byte forms to mask, longest first (so a key holding another is masked whole)."""
    found = {k.encode() for k in keys if k and len(k) >= MIN_SECRET}
    return tuple(sorted(found, key=len, reverse=True))
