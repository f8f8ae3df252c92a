"""The router's sweeping deadlines: a block times out once its deadline passes (at most one tick
late), finishes untouched before it, leaves other cancellations alone, moves the one timer only
for a sooner deadline and leaves no timer behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from signalbox_router.forwarding.deadlines import Deadlines, TaskFinder

TICK = 0.01


async def test_a_block_past_its_deadline_raises_timeout_within_a_tick() -> None:
    board = Deadlines(tick=TICK)
    started = time.monotonic()

    async def sleeps() -> None:
        with board.at(started + 0.05):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await sleeps()
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 0.05 + 5 * TICK
    assert len(board) == 0
    assert asyncio.current_task().cancelling() == 0


async def test_a_block_that_finishes_in_time_is_untouched_and_the_timer_stops() -> None:
    board = Deadlines(tick=TICK)
    with board.at(time.monotonic() + 0.1):
        await asyncio.sleep(0.02)
    assert len(board) == 0
    await asyncio.sleep(0.1 + 3 * TICK)  # the timer fired once, found nothing, and stopped
    assert board._sweeper is None
    await asyncio.sleep(0)  # and no cancellation is pending on this task


async def test_later_deadlines_leave_the_timer_alone() -> None:
    """One timer for the earliest deadline: requests whose deadlines come after it (the usual
    case, with one timeout for all) arm and cancel nothing, and the loop wakes once."""
    board = Deadlines(tick=TICK)
    with board.at(time.monotonic() + 0.2):
        await asyncio.sleep(0)
    timer = board._sweeper
    assert timer is not None
    for _ in range(5):
        with board.at(time.monotonic() + 0.2):
            await asyncio.sleep(0)
        assert board._sweeper is timer
    with board.at(time.monotonic() + 0.05):  # due sooner: the timer moves
        await asyncio.sleep(0)
    assert board._sweeper is not timer
    assert timer.cancelled()


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    board = Deadlines(tick=TICK)

    async def waits() -> None:
        with board.at(time.monotonic() + 10):
            await asyncio.sleep(10)

    task = asyncio.create_task(waits())
    await asyncio.sleep(2 * TICK)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(board) == 0


async def test_many_tasks_each_get_their_own_deadline() -> None:
    board = Deadlines(tick=TICK)

    async def wait(seconds: float, limit: float) -> str:
        try:
            with board.at(time.monotonic() + limit):
                await asyncio.sleep(seconds)
        except TimeoutError:
            return "timeout"
        return "done"

    results = await asyncio.gather(
        *(wait(0.01, 0.2) for _ in range(20)), *(wait(1.0, 0.05) for _ in range(20))
    )
    assert results == ["done"] * 20 + ["timeout"] * 20
    assert len(board) == 0


async def test_nested_blocks_time_out_at_the_earlier_deadline() -> None:
    board = Deadlines(tick=TICK)
    started = time.monotonic()

    async def nested() -> None:
        with board.at(started + 0.05), board.at(started + 5):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await nested()
    assert time.monotonic() - started < 0.05 + 5 * TICK
    assert len(board) == 0
    with board.at(started + 5):  # the inner block's end restores the outer deadline
        with board.at(started + 6):
            await asyncio.sleep(0)
        assert board._pending[asyncio.current_task()] == started + 5


def test_a_deadline_needs_a_running_loop() -> None:
    deadline = Deadlines().at(0.0)
    with pytest.raises(RuntimeError):
        deadline.__enter__()


async def test_a_cancellation_that_meets_an_expiry_stays_a_cancellation() -> None:
    board = Deadlines(tick=TICK)  # this test sweeps by hand
    entered = asyncio.Event()

    async def waits() -> None:
        with board.at(time.monotonic() + 60):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(waits())
    await entered.wait()
    board._pending[task] = time.monotonic()  # as if its time had come
    board._sweep()  # the expiry cancels the task ...
    task.cancel()  # ... and so does someone else, before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(board) == 0


async def test_after_an_inner_timeout_the_outer_deadline_still_holds() -> None:
    board = Deadlines(tick=TICK)
    started = time.monotonic()

    async def nested() -> str:
        with board.at(started + 0.1):
            try:
                with board.at(started + 0.03):
                    await asyncio.sleep(5)
            except TimeoutError:
                pass  # carry on inside the outer block
            await asyncio.sleep(5)
        return "not reached"

    with pytest.raises(TimeoutError):
        await nested()
    assert 0.1 <= time.monotonic() - started < 0.1 + 5 * TICK
    assert len(board) == 0


async def test_a_moved_deadline_holds_from_then_on() -> None:
    board = Deadlines(tick=TICK)
    started = time.monotonic()

    async def moves(later: float) -> None:
        with board.at(started + 0.03) as deadline:
            deadline.move(started + later)
            await asyncio.sleep(0.1)

    await moves(later=5)  # no longer due at 30 ms: the sleep ends first
    with pytest.raises(TimeoutError):
        await moves(later=0.05)
    assert len(board) == 0


def test_the_task_finder_finds_each_task_in_each_loop_it_is_called_from() -> None:
    find = TaskFinder()

    async def one_loop() -> None:
        async def check() -> None:
            assert find() is asyncio.current_task()

        await asyncio.gather(*(check() for _ in range(3)))
        await check()

    for _ in range(3):  # a new loop each time, as each test runs in its own
        asyncio.run(one_loop())
