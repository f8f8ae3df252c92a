"""The fence between leadership and writes: until when this process may still write.

The elector extends the fence after each successful renewal and revokes it the moment it
loses (or gives up) the lease. Every write asks the fence first for a deadline: the write must
finish before the lease could pass to another replica, or it is not sent at all. So a leader
paused past its lease (SIGSTOP, a long GC, a frozen VM) finds the fence closed on waking and
writes nothing, whatever its tasks still believe. Pure, with the clock passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_WRITE_SECONDS = 0.5  # a write that could not finish in this long is not started


class NotLeading(Exception):
    """This process does not hold the lease (or not for long enough): nothing may be written."""


class Fence:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = float("-inf")
        self._term = 0

    @property
    def term(self) -> int:
        """Counts acquisitions; a write prepared in an earlier term must not be sent."""
        return self._term

    def open(self, until: float) -> None:
        """Leadership was acquired; writes may go on until ``until`` (monotonic seconds)."""
        self._term += 1
        self._until = until

    def extend(self, until: float) -> None:
        """A renewal succeeded; never moves the end backwards, never reopens a closed fence."""
        if self._until != float("-inf"):
            self._until = max(self._until, until)

    def close(self) -> None:
        self._until = float("-inf")

    def remaining(self) -> float:
        return self._until - self._clock()

    def valid(self) -> bool:
        return self.remaining() >= MIN_WRITE_SECONDS

    def deadline(self, wanted: float) -> float:
        """Seconds a write may take: ``wanted``, or less when the lease ends sooner.

        Raises NotLeading when the lease will not last ``MIN_WRITE_SECONDS``.
        """
        left = self.remaining()
        if left < MIN_WRITE_SECONDS:
            raise NotLeading("the lease is not held")
        return min(wanted, left)


def always_open() -> Fence:
    """A fence for a single replica run without leader election: it never closes."""
    fence = Fence()
    fence.open(float("inf"))
    return fence
