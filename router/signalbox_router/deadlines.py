"""Timeouts for many requests at once, checked by one timer.

Arming and disarming an event-loop timer costs microseconds (``asyncio.timeout`` about 11 µs
a use under uvloop), and the request path needs one for the first token, one for the rest of a
plain answer and one per streamed read. Here a deadline is a dict entry; one timer per process,
armed only while deadlines are pending, looks every ``tick`` seconds and cancels the tasks
whose time is up (it walks the entries only once the earliest deadline it knows of has come).
A deadline fires at most ``tick`` late.

A block inside another one runs until the earlier of the two deadlines and raises there. A
cancellation from elsewhere stays a cancellation, even when it meets an expiry.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    def __init__(self, tick: float = 0.02) -> None:
        self.tick = tick
        self._pending: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._next_due = math.inf  # no pending deadline is earlier (some may be later)
        self._sweeper: asyncio.TimerHandle | None = None

    def at(self, when: float) -> Deadline:
        """A ``with`` block whose awaits raise TimeoutError once ``time.monotonic()`` passes
        ``when``."""
        return Deadline(self, when)

    def __len__(self) -> int:
        return len(self._pending)

    def _enter(self, task: Task, when: float) -> float | None:
        previous = self._pending.get(task)
        if previous is not None:
            when = min(when, previous)
        self._wait_for(task, when)
        return previous

    def _wait_for(self, task: Task, when: float) -> None:
        self._pending[task] = when
        self._next_due = min(self._next_due, when)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.tick, self._sweep)

    def _exit(self, task: Task, previous: float | None) -> bool:
        """Forget the block's deadline (the enclosing block's comes back); True when the
        block's task was cancelled for being late."""
        if previous is None:
            self._pending.pop(task, None)
        else:
            self._wait_for(task, previous)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        if now >= self._next_due:
            self._next_due = math.inf
            for task, when in list(self._pending.items()):
                if when <= now:
                    del self._pending[task]
                    self._expired.add(task)
                    task.cancel()
                else:
                    self._next_due = min(self._next_due, when)
        if self._pending:
            self._sweeper = asyncio.get_running_loop().call_later(self.tick, self._sweep)
        else:
            self._next_due = math.inf


class Deadline:
    __slots__ = ("_board", "_cancelling", "_previous", "_task", "when")

    def __init__(self, board: Deadlines, when: float) -> None:
        self._board, self.when = board, when
        self._task: Task | None = None
        self._previous: float | None = None
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        self._task, self._cancelling = task, task.cancelling()
        self._previous = self._board._enter(task, self.when)
        return self

    def move(self, when: float) -> None:
        """Let the block run until ``when`` instead."""
        assert self._task is not None, "only inside the block"
        self.when = when
        limit = when if self._previous is None else min(when, self._previous)
        self._board._wait_for(self._task, limit)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        if self._board._exit(self._task, self._previous) and (
            self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
