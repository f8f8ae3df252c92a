"""Work that grows with a request's size runs off the event loop.

Parsing, checking and translating a body of a few kilobytes takes microseconds; the same steps
over an 8 MB body of 200,000 small messages take a few hundred milliseconds of Python, and on the
event loop that is a few hundred milliseconds in which no other request gets an answer, not even
``/healthz``. :func:`run` calls such a step in place for an ordinary body and in a worker thread
for a large one; the interpreter switches threads every few milliseconds, so the loop keeps
serving while the large body is worked on. The steps handed over are pure: they read the body
and return values, and touch no state another task shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

LARGE = 256 << 10  # bytes: below this a step is cheaper than the hand-over to a thread

P = ParamSpec("P")
T = TypeVar("T")


async def run(size: int, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``step(*args, **kwargs)`` for a body of ``size`` bytes: in place when it is small, in a
    worker thread when it is large."""
    if size < LARGE:
        return step(*args, **kwargs)
    return await asyncio.to_thread(step, *args, **kwargs)
