"""The leader-election rule, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signalbox_operator.leader import Action, LeaseView, decide

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ME = "operator-7f9c-abc"


def lease(holder: str | None, age: float | None, duration: float = 15.0) -> LeaseView:
    renewed = None if age is None else NOW - timedelta(seconds=age)
    return LeaseView(holder=holder, renewed=renewed, duration=duration, version="42")


@pytest.mark.parametrize(
    ("view", "action"),
    [
        pytest.param(None, Action.CREATE, id="no lease"),
        pytest.param(lease(ME, 1), Action.RENEW, id="held by me, fresh"),
        pytest.param(lease(ME, 3600), Action.RENEW, id="held by me, expired"),
        pytest.param(lease(ME, None), Action.RENEW, id="held by me, never renewed"),
        pytest.param(lease("other", 0), Action.WAIT, id="other, just renewed"),
        pytest.param(lease("other", 14.999), Action.WAIT, id="other, about to expire"),
        pytest.param(lease("other", 15), Action.TAKE, id="other, expires now"),
        pytest.param(lease("other", 60), Action.TAKE, id="other, long expired"),
        pytest.param(lease("other", 20, duration=30), Action.WAIT, id="other, longer lease"),
        pytest.param(lease("other", -5), Action.WAIT, id="other, clock skew ahead"),
        pytest.param(lease("other", None), Action.TAKE, id="other, never renewed"),
        pytest.param(lease("", 1), Action.TAKE, id="empty holder"),
        pytest.param(lease(None, 1), Action.TAKE, id="released lease"),
        pytest.param(lease(ME.upper(), 1), Action.WAIT, id="holder match is exact"),
    ],
)
def test_decide(view: LeaseView | None, action: Action) -> None:
    assert decide(view, ME, NOW) == action
