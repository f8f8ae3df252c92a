"""Per-request control headers: what a client may ask of one request's failover.

``x-signalbox-priority`` (critical, standard, sheddable), ``x-signalbox-max-attempts`` (1-10,
clamped to the policy's ``failover.maxAttempts``), ``x-signalbox-timeout`` (one deadline for all
attempts and back-offs, a Go duration such as ``30s`` or plain seconds; it can shorten the policy's
``failover.totalTimeout``, never lengthen it) and ``x-signalbox-failover: off`` (one attempt). Each
may be given once. The values are parsed here, pure; ``of_request`` finds them in one pass over the
headers, and a request without any shares one ``Controls`` object with every other.
"""

from __future__ import annotations

from dataclasses import dataclass

from signalbox_api.primitives import parse_duration
from signalbox_router.asgi.sending import Scope
from signalbox_router.failures import BadRequest
from signalbox_router.limits.priority import RequestPriority

PRIORITY = b"x-signalbox-priority"
MAX_ATTEMPTS = b"x-signalbox-max-attempts"
TIMEOUT = b"x-signalbox-timeout"
FAILOVER = b"x-signalbox-failover"
NAMES = frozenset({PRIORITY, MAX_ATTEMPTS, TIMEOUT, FAILOVER})
MAX_TIMEOUT = 3600.0
ATTEMPTS_CEILING = 10  # the most a policy allows
_PRIORITIES = {p.name.lower().encode(): p for p in RequestPriority}


class InvalidControl(BadRequest):
    """A control header's value is malformed; ``header`` (and ``param``) names it."""

    code = "invalid_header"

    def __init__(self, header: bytes, message: str) -> None:
        super().__init__(message, param=header.decode())
        self.header = header.decode()


@dataclass(frozen=True, slots=True)
class Controls:
    priority: RequestPriority = RequestPriority.STANDARD
    max_attempts: int | None = None  # None: the policy's
    timeout: float | None = None  # seconds for the whole request; None: the policy's
    failover: bool = True

    def attempts(self, policy_max: int) -> int:
        """Attempts this request may make under a policy that allows ``policy_max``."""
        if not self.failover:
            return 1
        if self.max_attempts is None:
            return policy_max
        return min(self.max_attempts, policy_max)

    def total(self, policy_total: float | None) -> float | None:
        """Seconds the whole request may take: the earlier of the header and the policy."""
        if self.timeout is None:
            return policy_total
        return self.timeout if policy_total is None else min(self.timeout, policy_total)


DEFAULT = Controls()
BY_PRIORITY = {p: Controls(priority=p) for p in RequestPriority}


def parse(found: dict[bytes, bytes]) -> Controls:
    """The controls named by ``found`` (control header name -> raw value). Raises
    InvalidControl for a bad value; headers of other names are ignored."""
    priority = RequestPriority.STANDARD
    raw = found.get(PRIORITY, b"").strip()
    if raw:
        got = _PRIORITIES.get(raw.lower())
        if got is None:
            raise InvalidControl(
                PRIORITY, "x-signalbox-priority must be critical, standard or sheddable"
            )
        priority = got
    return Controls(
        priority=priority,
        max_attempts=_attempts(found.get(MAX_ATTEMPTS, b"").strip()),
        timeout=_timeout(found.get(TIMEOUT, b"").strip()),
        failover=_failover(found.get(FAILOVER, b"").strip().lower()),
    )


def _attempts(raw: bytes) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 2 or not 1 <= int(raw) <= ATTEMPTS_CEILING:
        raise InvalidControl(
            MAX_ATTEMPTS,
            f"x-signalbox-max-attempts must be a whole number from 1 to {ATTEMPTS_CEILING}",
        )
    return int(raw)


def _timeout(raw: bytes) -> float | None:
    if not raw:
        return None
    text = raw.decode("ascii", errors="replace")
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:
        raise InvalidControl(
            TIMEOUT,
            "x-signalbox-timeout must be a duration such as 30s, 1m30s or 500ms, or a number of "
            f"seconds, above 0 and at most {MAX_TIMEOUT:g}s",
        )
    return seconds


def _failover(raw: bytes) -> bool:
    if raw in (b"", b"on"):
        return True
    if raw == b"off":
        return False
    raise InvalidControl(FAILOVER, "x-signalbox-failover must be on or off")


_PRIORITY_ONLY = {p.name.lower().encode(): c for p, c in BY_PRIORITY.items()}


def of_request(scope: Scope) -> Controls:
    """The request's ``x-signalbox-*`` controls, found in one pass over the headers; a
    request with none (or a priority alone) gets a shared object."""
    found: dict[bytes, bytes] | None = None
    for key, value in scope.get("headers", ()):
        if key in NAMES:  # a set lookup: as cheap as the one compare it replaces
            if found is None:
                found = {}
            elif key in found:  # which one was meant is anybody's guess: neither is taken
                name = bytes(key)
                raise InvalidControl(name, f"{name.decode()} must be given at most once")
            found[bytes(key)] = bytes(value)
    if found is None:
        return DEFAULT
    if len(found) == 1 and PRIORITY in found:
        shared = _PRIORITY_ONLY.get(found[PRIORITY].strip().lower())
        if shared is not None:
            return shared
    return parse(found)
