"""Timeouts for many requests at once, checked by one timer.

Arming and disarming an event-loop timer costs microseconds (``asyncio.timeout`` about 11 µs
a use under uvloop), and the request path needs one for the first token, one for the rest of a
plain answer and one per streamed read. Here a deadline is a dict entry; one timer per process,
armed only while deadlines are pending, sweeps them every ``tick`` seconds and cancels the
tasks whose time is up. A deadline fires at most ``tick`` late.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    def __init__(self, tick: float = 0.02) -> None:
        self.tick = tick
        self._pending: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def at(self, when: float) -> Deadline:
        """A ``with`` block whose awaits raise TimeoutError once ``time.monotonic()`` passes
        ``when``."""
        return Deadline(self, when)

    def __len__(self) -> int:
        return len(self._pending)

    def _enter(self, task: Task, when: float) -> float | None:
        previous = self._pending.get(task)
        self._pending[task] = when if previous is None else min(when, previous)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.tick, self._sweep)
        return previous

    def _exit(self, task: Task, previous: float | None) -> bool:
        """Forget the block's deadline; True when it was the one that fired."""
        if previous is None:
            self._pending.pop(task, None)
        elif task in self._pending:
            self._pending[task] = previous
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        for task, when in list(self._pending.items()):
            if when <= now:
                del self._pending[task]
                self._expired.add(task)
                task.cancel()
        if self._pending:
            self._sweeper = asyncio.get_running_loop().call_later(self.tick, self._sweep)


class Deadline:
    __slots__ = ("_board", "_previous", "_task", "when")

    def __init__(self, board: Deadlines, when: float) -> None:
        self._board, self.when = board, when
        self._task: Task | None = None
        self._previous: float | None = None

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        self._task = task
        self._previous = self._board._enter(task, self.when)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        if self._board._exit(self._task, self._previous):
            self._task.uncancel()
            if exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
