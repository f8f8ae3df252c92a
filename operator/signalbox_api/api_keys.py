"""What an API key value must be to be sent: the one check the operator (on a Secret) and the
router (on a Secret, a key file or an environment variable) both make, in words that name the
problem and never the value."""

from __future__ import annotations

MAX_BYTES = 16 * 1024  # far above any provider's key; a header of more is refused upstream


def sendable(value: str) -> bool:
    """Whether ``value`` may be an HTTP header value: visible ASCII, spaces and tabs."""
    return value.isascii() and all(c == "\t" or " " <= c <= "~" for c in value)


def problem(value: str) -> str | None:
    """Why ``value`` cannot be used as an API key, or None when it can."""
    if len(value) > MAX_BYTES:
        return f"the key is over {MAX_BYTES} bytes"
    if not sendable(value):
        return (
            "the key cannot be sent in an HTTP header: it holds a line break, a control "
            "character or a non-ASCII character"
        )
    return None
