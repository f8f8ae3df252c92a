"""What the response cache keeps: one answer (``Entry``, also as the bytes Redis holds) and one
policy's answers in memory (``Entries``), least recently used first, up to ``maxEntries``.
Expiry is on the wall clock, so a copy read from Redis expires when the original does."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from signalbox_api.policy import ResponseCache as CacheSpec


@dataclass(frozen=True)
class Entry:
    provider: str
    model: str
    answer: bytes
    expires: float  # wall clock (seconds since the epoch), so Redis copies agree

    def encode(self) -> bytes:
        return f"{self.expires!r}\n{self.provider}\n{self.model}\n".encode() + self.answer

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        expires, provider, model, answer = raw.split(b"\n", 3)
        return cls(provider.decode(), model.decode(), answer, float(expires))


class Entries:
    """One policy's entries, least recently used first."""

    def __init__(self, spec: CacheSpec) -> None:
        self.spec, self.entries = spec, OrderedDict[str, Entry]()

    def get(self, key: str, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None and entry.expires <= now:
            del self.entries[key]
            return None
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> int:
        """Keep ``entry``; the number of older entries evicted to make room."""
        self.entries[key] = entry
        self.entries.move_to_end(key)
        evicted = 0
        while len(self.entries) > self.spec.max_entries:
            self.entries.popitem(last=False)
            evicted += 1
        return evicted
