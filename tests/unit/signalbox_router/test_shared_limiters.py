"""Limiters over shared budgets: what each replica may take, and its share when alone."""

from __future__ import annotations

import pytest

from signalbox_api.provider import RateLimit
from signalbox_router.limits import leases, limiters, shared_limiters


def spec(**fields: object) -> RateLimit:
    return RateLimit.model_validate(fields)


def test_a_limiter_has_one_leased_budget_per_declared_limit() -> None:
    built = shared_limiters.build(
        "sb:budget:p", spec(requestsPerMinute=60, tokensPerMinute=6000), 3, lambda: None
    )
    assert [b.key for b in built.budgets] == ["sb:budget:p:requests", "sb:budget:p:tokens"]
    assert isinstance(built.limiter.requests, leases.LeasedWindow)
    assert isinstance(built.limiter.tokens, leases.LeasedWindow)
    requests, tokens = built.budgets
    assert (requests.algorithm, requests.capacity) == ("tb", 1)  # one second's worth
    assert tokens.capacity == 6000  # a token bucket holds a whole minute
    assert requests.args() == ["tb", "60", "1.0"]
    assert requests.window.life == 2.0  # a bucket's leases are short


@pytest.mark.parametrize(
    ("algorithm", "algorithm_code", "window"),
    [
        ("TokenBucket", "tb", limiters.TokenBucket),
        ("SlidingWindow", "sw", limiters.SlidingWindow),
        ("FixedWindow", "fw", limiters.FixedWindow),
    ],
)
def test_alone_each_replica_spends_its_share_with_the_same_algorithm(
    algorithm: str, algorithm_code: str, window: type
) -> None:
    built = shared_limiters.build(
        "k", spec(requestsPerMinute=60, algorithm=algorithm), 3, lambda: None
    )
    (budget,) = built.budgets
    assert budget.algorithm == algorithm_code
    assert isinstance(budget.window.fallback, window)
    budget.window.go_alone(0.0, 3)
    admitted = sum(budget.window.admit(0.0, 1) == 0.0 for _ in range(60))
    assert admitted == (1 if algorithm == "TokenBucket" else 20)  # burst 1; 60 / 3


@pytest.mark.parametrize(
    ("limit", "replicas", "share"), [(10, 3, 3), (2, 3, 1), (None, 3, None), (9, 1, 9)]
)
def test_concurrency_is_split_between_replicas(
    limit: int | None, replicas: int, share: int | None
) -> None:
    assert shared_limiters.share(limit, replicas) == share


def test_a_new_count_of_replicas_moves_every_share() -> None:
    built = shared_limiters.build(
        "k", spec(requestsPerMinute=600, maxConcurrency=12, algorithm="SlidingWindow"), 2, print
    )
    (budget,) = built.budgets
    assert (built.limiter.max_concurrency, budget.window.cap) == (6, 150)
    shared_limiters.resize(built, 4, fallbacks=True)
    assert (built.limiter.max_concurrency, budget.window.cap) == (3, 75)
    assert isinstance(budget.window.fallback, limiters.SlidingWindow)
    assert budget.window.fallback.limit == 150
