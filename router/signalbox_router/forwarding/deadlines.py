"""Timeouts for many requests at once, checked by one timer.

Arming and disarming an event-loop timer costs microseconds (``asyncio.timeout`` about 11 µs
a use under uvloop), and the request path needs one for the first token, one for the rest of a
plain answer and one per streamed read. Here a deadline is a dict entry, and one timer per
process is armed for the earliest deadline it knows of: when it fires, it cancels the tasks whose
time is up and arms itself for the next. Deadlines that end with their block leave the timer as
it is (it finds nothing to do when it fires), and a new deadline moves it only when it is due
more than ``tick`` sooner, so a request whose deadlines are later than those before it touches
no timer at all, and the loop does not wake for deadlines nobody waits on any more. A deadline
fires at most ``tick`` late.

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


class TaskFinder:
    """``asyncio.current_task()`` for code that runs in one event loop at a time: the loop is
    looked up once, not on every call (in Python 3.11 each lookup is also a system call, for the
    process id). Called from another loop (each test runs its own), it finds that one."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> Task | None:
        loop = self._loop
        task = None if loop is None else asyncio.current_task(loop)
        if task is None:
            loop = self._loop = asyncio.get_running_loop()
            task = asyncio.current_task(loop)
        return task


this_task = TaskFinder()


class Deadlines:
    def __init__(self, tick: float = 0.02) -> None:
        self.tick = tick
        self._pending: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._next_due = math.inf  # no pending deadline is earlier (some may be later)
        self._sweeper: asyncio.TimerHandle | None = None  # armed whenever _next_due is finite
        self._armed_for = math.inf

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
        if when < self._next_due:
            self._next_due = when
            self._arm(when)

    def _arm(self, when: float) -> None:
        """Have the timer fire by ``when`` (within a tick)."""
        if self._sweeper is not None:
            if self._armed_for - when <= self.tick:
                return
            self._sweeper.cancel()
        self._armed_for = when
        delay = max(0.0, when - time.monotonic())
        self._sweeper = asyncio.get_running_loop().call_later(delay, self._sweep)

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
        self._sweeper, self._armed_for = None, math.inf
        now = time.monotonic()
        self._next_due = math.inf
        for task, when in list(self._pending.items()):
            if when <= now:
                del self._pending[task]
                self._expired.add(task)
                task.cancel()
            else:
                self._next_due = min(self._next_due, when)
        if self._next_due < math.inf:
            self._arm(self._next_due)


class Deadline:
    __slots__ = ("_board", "_cancelling", "_previous", "_task", "when")

    def __init__(self, board: Deadlines, when: float) -> None:
        self._board, self.when = board, when
        self._task: Task | None = None
        self._previous: float | None = None
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        task = this_task()
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
