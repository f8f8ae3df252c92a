"""The local side of a shared budget: spending leases, asking for more, falling back alone."""

from __future__ import annotations

import math

import pytest

from signalbox_router.limits import leases, limiters


def window(limit: float = 60, cap: float = 10, share: float = 20) -> leases.LeasedWindow:
    w = leases.LeasedWindow(limit, cap, limiters.SlidingWindow(share))
    w.wakes = 0  # type: ignore[attr-defined]

    def wake() -> None:
        w.wakes += 1  # type: ignore[attr-defined]

    w.wake = wake
    return w


def grant(
    w: leases.LeasedWindow, now: float, amount: float, retry: float = 0.0, used: float = 0.0
) -> None:
    ask = w.ask(now)
    assert ask is not None
    w.granted(now, ask, leases.Grant(amount, "s1", leases.LIFE, retry, used))


def test_with_no_lease_a_request_waits_briefly_and_more_is_asked_for() -> None:
    w = window()
    assert w.wait(0.0, 1) == leases.POLL
    assert w.wakes == 1  # type: ignore[attr-defined]
    ask = w.ask(0.0)
    assert ask == leases.Ask(want=1, need=1, charge=0)
    assert w.ask(0.0) is None  # one ask at a time


def test_a_granted_lease_is_spent_locally_until_it_expires() -> None:
    w = window()
    w.wait(0.0, 1)
    grant(w, 0.0, 5)
    for _ in range(5):
        assert w.admit(0.5, 1) == 0.0
    assert w.wait(0.5, 1) > 0  # spent
    w.wait(0.0, 1)
    grant(w, 1.0, 4)
    assert w.admit(1.5, 1) == 0.0
    assert w.wait(1.0 + leases.LIFE, 1) > 0  # expired at the end of its life
    assert w.take_returns() == [("s1", 3)]  # what it left goes back


def test_spending_below_half_a_batch_asks_ahead_with_the_demand_seen() -> None:
    w = window(limit=1000, cap=1000)
    w.wait(0.0, 1)
    grant(w, 0.0, 20)
    for i in range(10):
        w.admit(0.1 + i / 100, 1)
    assert w.wakes == 1  # type: ignore[attr-defined]
    w.admit(0.25, 1)
    assert w.wakes == 2  # type: ignore[attr-defined]
    ask = w.ask(0.25)
    assert ask is not None
    assert ask.need == 1
    assert ask.want == math.ceil(11 / 0.25 * leases.LIFE * leases.HEADROOM)  # demand seen


def test_a_batch_never_exceeds_the_cap() -> None:
    w = window(limit=1000, cap=10)
    w.wait(0.0, 1)
    grant(w, 0.0, 10)
    for _ in range(10):
        w.admit(0.1, 1)
    w.wait(0.2, 1)
    ask = w.ask(0.2)
    assert ask is not None
    assert ask.want == 10


def test_a_refusal_waits_for_redis_at_most_one_lease_life() -> None:
    w = window()
    w.wait(0.0, 1)
    grant(w, 0.0, 0, retry=30.0)
    assert w.ask(0.5) is None
    assert w.wait(0.5, 1) == pytest.approx(leases.LIFE - 0.5)
    assert w.ask(0.6) is None  # not before retry_at
    assert w.wait(leases.LIFE, 1) == leases.POLL
    assert w.ask(leases.LIFE) is not None


def test_late_charges_beyond_the_leases_are_charged_with_the_next_ask() -> None:
    w = window(limit=1000)
    w.wait(0.0, 10)
    grant(w, 0.0, 10)
    w.adjust(0.1, 10)
    w.adjust(0.2, 7)  # the answer used 7 more tokens than estimated
    w.adjust(0.3, -2)  # another used 2 fewer: pays debt first
    ask = w.ask(0.4)
    assert ask is not None
    assert ask.charge == 5
    w.unanswered(ask)  # no answer: kept for the next ask
    ask = w.ask(0.5)
    assert ask is not None
    assert ask.charge == 5


def test_a_refund_goes_back_to_the_newest_lease() -> None:
    w = window()
    w.wait(0.0, 3)
    grant(w, 0.0, 3)
    assert w.admit(0.1, 3) == 0.0
    w.adjust(0.2, -2)
    assert w.admit(0.3, 2) == 0.0


def test_alone_a_window_spends_its_share_counting_what_it_spent_shared() -> None:
    w = window(share=20)
    w.wait(0.0, 1)
    grant(w, 0.0, 10)
    for _ in range(8):
        assert w.admit(0.1, 1) == 0.0
    w.go_alone(0.2, 3)
    assert sum(w.admit(0.2, 1) == 0.0 for _ in range(30)) == 12  # 20 minus the 8 spent shared
    assert w.ask(0.3) is None  # nothing is asked of Redis while alone


def test_back_in_shared_mode_what_was_spent_alone_is_charged() -> None:
    w = window(limit=60, share=100)
    w.go_alone(0.2, 3)
    for _ in range(70):
        w.admit(0.1, 1)
    w.rejoin()
    w.wait(0.2, 1)
    ask = w.ask(0.2)
    assert ask is not None
    assert ask.charge == 60  # at most one whole budget


def test_a_cost_above_the_whole_limit_never_fits() -> None:
    w = window(limit=60)
    assert w.wait(0.0, 61) == limiters.OVERSIZED_RETRY
    assert w.ask(0.0) is None


def test_when_redis_lost_its_data_the_last_minute_spent_here_is_charged() -> None:
    w = window(limit=60, share=100)
    w.wait(0.0, 1)
    grant(w, 0.0, 10)
    for _ in range(8):
        w.admit(0.1, 1)
    w.go_alone(0.2, 3)
    for _ in range(3):
        w.admit(30.0, 1)
    w.lost(40.0)  # heard while alone: what was spent alone is in the minute's spending
    w.rejoin()
    w.wait(40.0, 1)
    ask = w.ask(40.0)
    assert ask is not None
    assert ask.charge == 11  # 8 spent shared, 3 alone, once


def test_leases_of_a_lost_generation_are_not_spent_or_given_back() -> None:
    w = window(limit=60, share=100)
    w.wait(0.0, 1)
    grant(w, 0.0, 10)
    w.admit(0.1, 1)
    w.lost(0.2)
    assert w.balance == 0.0
    assert w.take_returns() == []
    assert w.wait(0.2, 1) > 0  # waits for a lease of the new generation
    ask = w.ask(0.2)
    assert ask is not None
    assert ask.charge == 1


def test_alone_a_window_spends_its_part_of_what_the_whole_fleet_left() -> None:
    """Another replica spent most of the budget: this one, which spent little, may not spend a
    third of the whole limit when Redis goes away, only a third of what is left."""
    w = window(limit=60, share=20)
    w.wait(0.0, 1)
    grant(w, 0.0, 5, used=54)  # the fleet has used 54 of 60, 5 of them here
    for _ in range(5):
        w.admit(0.1, 1)
    w.go_alone(0.2, 3)
    assert sum(w.admit(0.2, 1) == 0.0 for _ in range(30)) == 2  # (60 - 54) / 3


def test_recent_spending_forgets_what_is_over_a_minute_old() -> None:
    recent = leases.SpentLastMinute()
    recent.add(0.5, 5)
    recent.add(30.0, 2)
    recent.add(30.5, -1)
    assert recent.total(40.0) == 6
    assert recent.total(61.2) == 1
    recent.add(61.5, 4)  # the ring reuses the slot of second 0
    assert recent.total(62.0) == 5
