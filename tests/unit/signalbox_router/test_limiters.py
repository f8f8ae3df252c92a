"""Rate limits as tables on an injected clock: windows, provider limiter, estimates, priority."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from signalbox_api.provider import RateLimit
from signalbox_router.limits.limiters import (
    Admission,
    FixedWindow,
    ProviderLimiter,
    SlidingWindow,
    TokenBucket,
    Window,
)
from signalbox_router.limits.priority import PriorityQueueGate, RequestPriority
from signalbox_router.metering.estimates import estimate_tokens

Step = tuple[float, float, float]  # (now, cost, expected admit result: 0.0 admitted, else wait)


def play(window: Window, steps: list[Step]) -> None:
    for i, (now, cost, expected) in enumerate(steps):
        got = window.admit(now, cost)
        assert got == pytest.approx(expected, abs=1e-6), f"step {i} at t={now} cost={cost}"


def spec(**wire: Any) -> RateLimit:
    return RateLimit.model_validate(wire)


# --- TokenBucket -------------------------------------------------------------------------------

BUCKET_TABLE: list[tuple[str, TokenBucket, list[Step]]] = [
    (
        "burst 3 at 1/s: three at once, the fourth waits one refill",
        TokenBucket(60, burst=3),
        [(0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 1.0), (0.5, 1, 0.5), (1.0, 1, 0), (1.0, 1, 1.0)],
    ),
    (
        "refill is capped at burst after a long idle",
        TokenBucket(60, burst=2),
        [(0, 1, 0), (0, 1, 0), (1000, 1, 0), (1000, 1, 0), (1000, 1, 1.0)],
    ),
    (
        "default burst is one second's worth: 600/min holds 10",
        TokenBucket(600),
        [*[(0.0, 1.0, 0.0)] * 10, (0, 1, 0.1), (0.1, 1, 0), (0.1, 1, 0.1)],
    ),
    (
        "token costs: 100/min with a minute's burst",
        TokenBucket(100, burst=100),
        [(0, 70, 0), (0, 40, 6.0), (6, 40, 0), (6, 5, 3.0), (9, 5, 0)],
    ),
    (
        "a cost above the burst is refused for 60 s and records nothing",
        TokenBucket(100, burst=50),
        [(0, 51, 60.0), (0, 50, 0), (0, 51, 60.0)],
    ),
    (
        "a clock that steps back refills nothing",
        TokenBucket(60, burst=1),
        [(10, 1, 0), (5, 1, 1.0), (11, 1, 0)],
    ),
]


@pytest.mark.parametrize(
    ("bucket", "steps"), [t[1:] for t in BUCKET_TABLE], ids=[t[0] for t in BUCKET_TABLE]
)
def test_token_bucket(bucket: TokenBucket, steps: list[Step]) -> None:
    play(bucket, steps)


@pytest.mark.parametrize(
    ("rate", "burst", "capacity"), [(1, None, 1), (30, None, 1), (90, None, 2), (60, 7, 7)]
)
def test_token_bucket_capacity(rate: int, burst: int | None, capacity: float) -> None:
    assert TokenBucket(rate, burst).capacity == capacity


def test_token_bucket_adjust_moves_admissions_earlier_or_later() -> None:
    bucket = TokenBucket(60, burst=60)  # 1 token/s
    assert bucket.admit(0, 60) == 0.0
    assert bucket.wait(0, 30) == pytest.approx(30.0)
    bucket.adjust(0, -20)  # used 20 fewer than estimated
    assert bucket.wait(0, 30) == pytest.approx(10.0)
    bucket.adjust(0, +50)  # then 50 more than estimated: in debt
    assert bucket.wait(0, 30) == pytest.approx(60.0)
    bucket.adjust(0, -1000)  # a refund never fills above the burst
    assert bucket.admit(0, 60) == 0.0
    assert bucket.wait(0, 1) == pytest.approx(1.0)


@pytest.mark.parametrize("make", [lambda: TokenBucket(0), lambda: SlidingWindow(-1)])
def test_non_positive_limits_are_rejected(make: Any) -> None:
    with pytest.raises(ValueError, match="positive"):
        make()


# --- SlidingWindow -----------------------------------------------------------------------------

SLIDING_TABLE: list[tuple[str, float, list[Step]]] = [
    (
        "3/min: the fourth waits until the oldest is 60 s old",
        3,
        [(0, 1, 0), (10, 1, 0), (20, 1, 0), (30, 1, 30.0), (59.5, 1, 0.5), (60, 1, 0)],
    ),
    (
        "after the first leaves, the next waits for the second",
        3,
        [(0, 1, 0), (10, 1, 0), (20, 1, 0), (60, 1, 0), (60, 1, 10.0), (70, 1, 0)],
    ),
    (
        "token costs: wait until enough cost has left, not just the oldest",
        100,
        [(0, 40, 0), (10, 40, 0), (20, 30, 40.0), (20, 20, 0), (30, 70, 40.0), (70, 70, 0)],
    ),
    (
        "costs within one 0.1 s slot share the later stamp (never expire early)",
        2,
        [(0.0, 1, 0), (0.05, 1, 0), (60.0, 1, 0.05), (60.05, 1, 0)],
    ),
    (
        "a cost above the limit is refused for 60 s and records nothing",
        10,
        [(0, 11, 60.0), (0, 10, 0), (1, 1, 59.0)],
    ),
]


@pytest.mark.parametrize(
    ("limit", "steps"), [t[1:] for t in SLIDING_TABLE], ids=[t[0] for t in SLIDING_TABLE]
)
def test_sliding_window(limit: float, steps: list[Step]) -> None:
    play(SlidingWindow(limit), steps)


def test_sliding_window_adjust() -> None:
    window = SlidingWindow(100)
    play(window, [(0, 60, 0), (10, 40, 0), (20, 50, 40.0)])
    window.adjust(20, -30)  # refund takes back the newest cost first: 10 left at t=10
    assert window.wait(20, 50) == pytest.approx(40.0)  # 60 at t=0 must still leave
    assert window.wait(20, 30) == 0.0
    window.adjust(20, -1000)  # stops at an empty log
    assert window.admit(20, 100) == 0.0
    window.adjust(30, 25)  # a late charge counts from when it is charged
    assert window.wait(79, 1) == pytest.approx(1.0)  # the 100 charged at t=20 leaves at t=80
    assert window.wait(80, 76) == pytest.approx(10.0)  # the 25 charged at t=30 leaves at t=90
    assert window.wait(90, 100) == 0.0


# --- FixedWindow -------------------------------------------------------------------------------

FIXED_TABLE: list[tuple[str, float, list[Step]]] = [
    (
        "2/min: refused until the next multiple of 60",
        2,
        [(120, 1, 0), (130, 1, 0), (150, 1, 30.0), (179.9, 1, 0.1), (180, 1, 0), (180, 1, 0)],
    ),
    (
        "windows are aligned to the clock, not to the first request",
        2,
        [(119, 1, 0), (119.5, 1, 0), (119.5, 1, 0.5), (120, 1, 0), (120, 1, 0), (121, 1, 59.0)],
    ),
    (
        "token costs and the oversized request",
        100,
        [(0, 101, 60.0), (0, 70, 0), (30, 40, 30.0), (30, 30, 0), (60, 100, 0)],
    ),
]


@pytest.mark.parametrize(
    ("limit", "steps"), [t[1:] for t in FIXED_TABLE], ids=[t[0] for t in FIXED_TABLE]
)
def test_fixed_window(limit: float, steps: list[Step]) -> None:
    play(FixedWindow(limit), steps)


def test_fixed_window_adjust() -> None:
    window = FixedWindow(100)
    assert window.admit(0, 100) == 0.0
    window.adjust(1, -30)
    assert window.admit(1, 30) == 0.0
    window.adjust(2, 50)  # over the limit until the boundary, which forgets it
    assert window.wait(2, 1) == pytest.approx(58.0)
    assert window.admit(60, 100) == 0.0
    window.adjust(61, -1000)  # a refund stops at zero
    assert window.admit(61, 100) == 0.0
    assert window.wait(61, 1) == pytest.approx(59.0)


# --- Properties over a simulated stream --------------------------------------------------------


def stream(
    window: Window, start: float, seconds: float, costs: list[int]
) -> list[tuple[float, int]]:
    """Offer a request every 10 ms; the admitted (time, cost)."""
    admitted = []
    for i in range(round(seconds * 100)):
        now, cost = start + i / 100, costs[i % len(costs)]
        if window.admit(now, cost) == 0.0:
            admitted.append((now, cost))
    return admitted


COSTS = [[1], [3, 1, 7, 2]]


@pytest.mark.parametrize("limit", [1, 7, 120, 1000])
@pytest.mark.parametrize("costs", COSTS)
def test_fixed_window_admits_at_most_limit_per_minute(limit: int, costs: list[int]) -> None:
    admitted = stream(FixedWindow(limit), 30.0, 150.0, costs)
    used: dict[float, int] = {}
    for now, cost in admitted:
        used[now // 60] = used.get(now // 60, 0) + cost
    assert max(used.values()) <= limit
    assert len(used) == 3  # minutes 0, 1 and 2 of the clock all admitted some


@pytest.mark.parametrize("limit", [1, 7, 120, 1000])
@pytest.mark.parametrize("costs", COSTS)
def test_sliding_window_admits_at_most_limit_in_any_60s(limit: int, costs: list[int]) -> None:
    admitted = stream(SlidingWindow(limit), 12.345, 150.0, costs)
    total, head = 0, 0
    for now, cost in admitted:  # every window (now - 60, now] that ends at an admission
        total += cost
        while admitted[head][0] + 60 <= now + 1e-9:  # 60 s ago is outside, float-fuzz aside
            total -= admitted[head][1]
            head += 1
        assert total <= limit
    assert sum(c for _, c in admitted) >= min(limit, 2 * max(costs))


@pytest.mark.parametrize(("rate", "burst"), [(60, 1), (60, 10), (120, 5), (600, None), (30, 30)])
@pytest.mark.parametrize("costs", COSTS)
def test_token_bucket_admits_at_most_burst_plus_rate(
    rate: int, burst: int | None, costs: list[int]
) -> None:
    bucket = TokenBucket(rate, burst)
    admitted = stream(bucket, 7.0, 150.0, costs)
    times = [now for now, _ in admitted]
    prefix = [0, *itertools.accumulate(c for _, c in admitted)]
    for i in range(len(admitted)):  # every interval [t_i, t_j] between admissions
        for j in range(i, len(admitted)):
            used = prefix[j + 1] - prefix[i]
            assert used <= bucket.capacity + rate / 60 * (times[j] - times[i]) + 1e-6
    assert prefix[-1] > rate / 60 * 150 * 0.8  # and it is not merely refusing everything


# --- ProviderLimiter ---------------------------------------------------------------------------


def test_from_spec_none_is_unlimited() -> None:
    limiter = ProviderLimiter.from_spec(None)
    assert limiter.unlimited
    for i in range(1000):
        assert limiter.try_acquire(0.0, 10**9) == Admission(True, 0.0, "")
        assert limiter.in_flight == i + 1
    limiter.release(0.0, 10**9, 5)
    assert limiter.in_flight == 999


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("TokenBucket", TokenBucket), ("SlidingWindow", SlidingWindow), ("FixedWindow", FixedWindow)],
)
def test_from_spec_builds_windows_of_the_algorithm(algorithm: str, kind: type) -> None:
    limiter = ProviderLimiter.from_spec(
        spec(requestsPerMinute=600, tokensPerMinute=9000, burst=4, algorithm=algorithm)
    )
    assert isinstance(limiter.requests, kind)
    assert isinstance(limiter.tokens, kind)
    assert limiter.max_concurrency is None
    assert not limiter.unlimited
    if isinstance(limiter.requests, TokenBucket) and isinstance(limiter.tokens, TokenBucket):
        assert limiter.requests.capacity == 4  # burst sizes requests...
        assert limiter.tokens.capacity == 9000  # ...while tokens hold a whole minute


def test_from_spec_default_is_token_bucket_and_absent_limits_are_none() -> None:
    limiter = ProviderLimiter.from_spec(spec(tokensPerMinute=100))
    assert limiter.requests is None
    assert isinstance(limiter.tokens, TokenBucket)


def test_concurrency() -> None:
    limiter = ProviderLimiter.from_spec(spec(maxConcurrency=2))
    assert limiter.try_acquire(0, 10).admitted
    assert limiter.try_acquire(0, 10).admitted
    assert limiter.try_acquire(0, 10) == Admission(False, 0.0, "concurrency")
    assert limiter.in_flight == 2
    limiter.release(1, 10, None)
    assert limiter.in_flight == 1
    assert limiter.try_acquire(1, 10).admitted
    for _ in range(5):  # releasing more than acquired never goes below zero
        limiter.release(2, 10, None)
    assert limiter.in_flight == 0


@pytest.mark.parametrize("algorithm", ["TokenBucket", "SlidingWindow", "FixedWindow"])
def test_tokens_refused_leaves_requests_unrecorded(algorithm: str) -> None:
    limiter = ProviderLimiter.from_spec(
        spec(
            requestsPerMinute=2, burst=2, tokensPerMinute=100, maxConcurrency=5, algorithm=algorithm
        )
    )
    assert limiter.try_acquire(0, 80).admitted
    refused = limiter.try_acquire(0, 30)
    assert (refused.admitted, refused.reason) == (False, "tokens")
    assert refused.retry_after > 0
    assert limiter.in_flight == 1
    assert limiter.try_acquire(0, 20).admitted  # the second request slot is still free
    assert limiter.try_acquire(0, 0).reason == "requests"


@pytest.mark.parametrize("algorithm", ["TokenBucket", "SlidingWindow", "FixedWindow"])
def test_requests_refused_leaves_tokens_unrecorded(algorithm: str) -> None:
    limiter = ProviderLimiter.from_spec(
        spec(requestsPerMinute=1, tokensPerMinute=100, algorithm=algorithm)
    )
    assert limiter.try_acquire(0, 10).admitted
    assert limiter.try_acquire(0, 10).reason == "requests"
    assert limiter.tokens is not None
    assert limiter.tokens.wait(0, 90) == 0.0  # only the admitted 10 tokens were charged
    assert limiter.tokens.wait(0, 91) > 0.0


def test_refusal_names_the_longest_wait() -> None:
    limiter = ProviderLimiter.from_spec(
        spec(requestsPerMinute=60, burst=1, tokensPerMinute=60, maxConcurrency=1)
    )
    assert limiter.try_acquire(0, 60).admitted
    assert limiter.try_acquire(0, 30) == Admission(False, 30.0, "tokens")
    assert limiter.try_acquire(0, 0) == Admission(False, 1.0, "requests")
    limiter.release(0, 60, 60)
    assert limiter.try_acquire(0.5, 0) == Admission(False, 0.5, "requests")


@pytest.mark.parametrize("algorithm", ["TokenBucket", "SlidingWindow", "FixedWindow"])
def test_oversized_request_is_refused_for_a_minute(algorithm: str) -> None:
    limiter = ProviderLimiter.from_spec(
        spec(requestsPerMinute=10, tokensPerMinute=100, algorithm=algorithm)
    )
    assert limiter.try_acquire(0, 101) == Admission(False, 60.0, "tokens")
    assert limiter.in_flight == 0
    assert limiter.try_acquire(0, 100).admitted  # nothing was recorded for the oversized one


def test_release_reconciles_tokens() -> None:
    limiter = ProviderLimiter.from_spec(spec(tokensPerMinute=600))  # 10 tokens/s
    assert limiter.try_acquire(0, 500).admitted
    assert limiter.try_acquire(0, 400).retry_after == pytest.approx(30.0)
    limiter.release(1, 500, 100)  # 400 fewer than estimated: admitted earlier
    assert limiter.try_acquire(1, 400).admitted
    limiter.release(1, 400, 700)  # 300 more: in debt, admitted later
    assert limiter.try_acquire(1, 100).retry_after == pytest.approx(29.0)  # level 110 - 300 = -190
    limiter.release(1, 100, None)  # unknown usage leaves the estimate charged
    assert limiter.in_flight == 0


# --- estimate_tokens ---------------------------------------------------------------------------


def chat(*contents: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents], **extra}


ESTIMATE_TABLE: list[tuple[str, dict[str, Any], int]] = [
    ("40 characters, max_tokens", chat("abcd" * 10, max_tokens=100), 3 + 4 + 10 + 100),
    ("no max_tokens: 256", chat("abcd" * 10), 3 + 4 + 10 + 256),
    ("partial tokens round up", chat("abcde", max_tokens=0), 3 + 4 + 2),
    ("two messages", chat("abcd", "abcdabcd", max_tokens=1), 3 + 8 + 1 + 2 + 1),
    (
        "max_completion_tokens wins over max_tokens",
        chat("", max_completion_tokens=50, max_tokens=900),
        3 + 4 + 50,
    ),
    ("n completions", chat("", max_tokens=10, n=3), 3 + 4 + 30),
    (
        "text parts count, an image counts flat",
        chat(
            [
                {"type": "text", "text": "abcdefgh"},
                {"type": "image_url", "image_url": {"url": "data:..."}},
            ],
            max_tokens=0,
        ),
        3 + 4 + 2 + 85,
    ),
    (
        "tool-call arguments count",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"function": {"name": "getw", "arguments": '{"a":"bcdef"}'}}],
                }
            ],
            "max_tokens": 0,
        },
        3 + 4 + 1 + 4,
    ),
    (
        "malformed fields count as nothing",
        {"messages": "nope", "max_tokens": "many", "n": "x"},
        3 + 256,
    ),
    ("a bool is not a max_tokens", chat("", max_tokens=True), 3 + 4 + 256),
    ("junk messages are skipped", {"messages": [1, None, "x"], "max_tokens": 0}, 3),
    ("embeddings: one string", {"model": "e", "input": "abcd" * 5}, 5),
    ("embeddings: strings", {"input": ["abcd", "abcdefghi", ""]}, 1 + 3),
    ("embeddings: token ids", {"input": [101, 2023, 102]}, 3),
    ("embeddings: lists of token ids", {"input": [[1, 2], [3, 4, 5]]}, 5),
    ("embeddings: malformed", {"input": [{"text": "abcd"}, 7, None]}, 0),
    ("legacy completions prompt", {"prompt": "abcdabcd", "max_tokens": 16}, 3 + 2 + 16),
]


@pytest.mark.parametrize(
    ("body", "expected"), [t[1:] for t in ESTIMATE_TABLE], ids=[t[0] for t in ESTIMATE_TABLE]
)
def test_estimate_tokens(body: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(body) == expected


def test_estimate_is_about_four_characters_a_token() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 100
    assert estimate_tokens({"input": text}) == math.ceil(len(text) / 4)


# --- RequestPriority and PriorityQueueGate -----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, RequestPriority.STANDARD),
        ("", RequestPriority.STANDARD),
        ("critical", RequestPriority.CRITICAL),
        (" Sheddable ", RequestPriority.SHEDDABLE),
        ("STANDARD", RequestPriority.STANDARD),
        ("urgent", RequestPriority.STANDARD),
        ("0", RequestPriority.STANDARD),
        ("__class__", RequestPriority.STANDARD),
    ],
)
def test_request_priority_parse(header: str | None, expected: RequestPriority) -> None:
    assert RequestPriority.parse(header) is expected


def test_priority_order() -> None:
    assert RequestPriority.CRITICAL < RequestPriority.STANDARD < RequestPriority.SHEDDABLE


def drain(gate: PriorityQueueGate[str]) -> list[str]:
    order = []
    while (ticket := gate.next_to_try()) is not None:
        order.append(ticket)
        assert gate.remove(ticket)
    return order


def test_gate_orders_by_priority_then_fifo() -> None:
    gate: PriorityQueueGate[str] = PriorityQueueGate()
    assert gate.next_to_try() is None
    arrivals = [
        ("s1", RequestPriority.SHEDDABLE),
        ("n1", RequestPriority.STANDARD),
        ("c1", RequestPriority.CRITICAL),
        ("n2", RequestPriority.STANDARD),
        ("s2", RequestPriority.SHEDDABLE),
        ("c2", RequestPriority.CRITICAL),
    ]
    for t, (ticket, priority) in enumerate(arrivals):
        gate.enqueue(ticket, priority, float(t))
    assert len(gate) == 6
    assert gate.next_to_try() == "c1"
    assert gate.next_to_try() == "c1"  # peeking does not dequeue
    assert gate.enqueued_at("n2") == 3.0
    assert drain(gate) == ["c1", "c2", "n1", "n2", "s1", "s2"]
    assert len(gate) == 0


def test_gate_removal() -> None:
    gate: PriorityQueueGate[str] = PriorityQueueGate()
    for t, ticket in enumerate(["a", "b", "c"]):
        gate.enqueue(ticket, RequestPriority.STANDARD, float(t))
    gate.enqueue("x", RequestPriority.CRITICAL, 3.0)
    assert gate.remove("x")  # a timed-out critical waiter
    assert not gate.remove("x")
    assert not gate.remove("never")
    assert gate.remove("b")
    assert gate.enqueued_at("b") is None
    assert len(gate) == 2
    gate.enqueue("b", RequestPriority.STANDARD, 4.0)  # re-queued at the back
    with pytest.raises(ValueError, match="already waiting"):
        gate.enqueue("b", RequestPriority.CRITICAL, 5.0)
    assert drain(gate) == ["a", "c", "b"]


def test_gate_many_removals_keep_order() -> None:
    gate: PriorityQueueGate[int] = PriorityQueueGate()
    for i in range(1000):
        gate.enqueue(i, RequestPriority(i % 3), float(i))
    for i in range(0, 1000, 2):
        gate.remove(i)
    order = []
    while (ticket := gate.next_to_try()) is not None:
        order.append(ticket)
        gate.remove(ticket)
    assert order == sorted(range(1, 1000, 2), key=lambda i: (i % 3, i))
