"""Request priority (``x-signalbox-priority``) and the line requests wait in when limits bind:
critical before standard, first come first served within a class; sheddable never waits."""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar


class RequestPriority(enum.IntEnum):
    """A request's class; lower values get freed capacity first."""

    CRITICAL = 0
    STANDARD = 1
    SHEDDABLE = 2

    @classmethod
    def parse(cls, header_value: str | None) -> RequestPriority:
        """The class a header names (any case); standard when absent or unknown."""
        return cls.__members__.get((header_value or "").strip().upper(), cls.STANDARD)


T = TypeVar("T", bound=Hashable)


class PriorityQueueGate(Generic[T]):
    """Waiting tickets in the order they should get capacity: by priority, then FIFO; all O(1)."""

    def __init__(self) -> None:
        self._queues: tuple[OrderedDict[T, float], ...] = tuple(
            OrderedDict() for _ in RequestPriority
        )
        self._priority: dict[T, RequestPriority] = {}

    def __len__(self) -> int:
        return len(self._priority)

    def enqueue(self, ticket_id: T, priority: RequestPriority, now: float) -> None:
        if ticket_id in self._priority:
            raise ValueError(f"ticket {ticket_id!r} is already waiting")
        self._priority[ticket_id] = priority
        self._queues[priority][ticket_id] = now

    def enqueued_at(self, ticket_id: T) -> float | None:
        priority = self._priority.get(ticket_id)
        return None if priority is None else self._queues[priority][ticket_id]

    def next_to_try(self) -> T | None:
        """The ticket to offer capacity to next; it stays queued until removed."""
        return next((next(iter(queue)) for queue in self._queues if queue), None)

    def remove(self, ticket_id: T) -> bool:
        """Forget a ticket (admitted, timed out or cancelled); False if it was not waiting."""
        priority = self._priority.pop(ticket_id, None)
        if priority is not None:
            del self._queues[priority][ticket_id]
        return priority is not None
