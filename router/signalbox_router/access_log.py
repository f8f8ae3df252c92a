"""Each model request's id and its one access-log line.

The id is the client's ``x-request-id`` when it is a plain token of at most 128 characters,
else a new one; it is sent back in ``x-request-id`` on every answer and set for the request's
task, so every log line written for the request carries it (``logs.REQUEST_ID``). Once a
request to a model route is answered (its stream ended, what its attempts reported booked),
one line on the ``signalbox_router.access`` logger says what came of it: method, path, model,
policy, provider, attempts, status, duration, tokens and cache. A failure (a status of 400 or
more) or a failover (more than one attempt) is a warning; the rest is info. Never a prompt, an
answer or a key: the line holds names and numbers only.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("signalbox_router.access")

_LONGEST = 128
_TOKEN = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


def request_id(given: bytes) -> str:
    """The client's ``x-request-id`` when it is a plain token, else a new id."""
    try:
        text = given.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return text if _TOKEN.fullmatch(text) else os.urandom(16).hex()


@dataclass(slots=True)
class Access:
    """What one model request came to, filled in by the edge and by its attempts."""

    request_id: str
    method: str
    path: str
    started: float  # monotonic
    model: str = ""  # as the client named it
    policy: str = ""
    provider: str = ""  # the last one tried
    attempts: int = 0
    status: int = 0  # as the client received it (499 when it left before an answer)
    usage: tuple[int, int] | None = None
    estimated: bool = False  # the router counted the tokens itself
    cache: str = ""  # "hit", "miss" or "bypass" where the policy caches

    def attempted(
        self, provider: str, number: int, usage: tuple[int, int] | None, estimated: bool
    ) -> None:
        self.provider, self.attempts = provider, max(self.attempts, number)
        if usage is not None:
            self.usage, self.estimated = usage, estimated

    def fields(self, now: float) -> dict[str, Any]:
        prompt, completion = self.usage if self.usage is not None else (None, None)
        return {
            "method": self.method,
            "path": self.path,
            "model": _one_word(self.model) or None,
            "policy": self.policy or None,
            "provider": self.provider or None,
            "attempts": self.attempts,
            "status": self.status,
            "duration_ms": round((now - self.started) * 1000, 1),
            "tokens_in": prompt,
            "tokens_out": completion,
            "tokens_estimated": self.estimated if self.usage is not None else None,
            "cache": self.cache or None,
        }


def _one_word(text: str) -> str:
    """A client's name for something, as one word of at most ``_LONGEST`` characters: line
    breaks, spaces and anything not printable ASCII escaped, so no client can add a line or a
    field of its own to the log."""
    if _TOKEN.fullmatch(text):
        return text
    escaped = text.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")
    return escaped if len(escaped) <= _LONGEST else escaped[: _LONGEST - 3] + "..."


def write(access: Access, now: float) -> None:
    """The request's access-log line (nothing is built when its level is off)."""
    level = logging.WARNING if access.status >= 400 or access.attempts > 1 else logging.INFO
    if log.isEnabledFor(level):
        fields = access.fields(now)
        text = " ".join(f"{key}={'-' if value is None else value}" for key, value in fields.items())
        log.log(level, "%s", text, extra=fields)
