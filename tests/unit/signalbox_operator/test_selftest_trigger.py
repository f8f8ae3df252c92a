"""When the self-test annotation asks for a run, and what a failed run says (pure, tables)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from signalbox_api.provider import SelfTestCheck, SelfTestStatus
from signalbox_operator.selftest import trigger

KEY = "signalbox.dev/self-test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAN = SelfTestStatus(time=T0, passed=True, trigger="run")
SETTLED = SelfTestStatus(time=T0, passed=True)


@pytest.mark.parametrize(
    ("annotations", "last", "wanted"),
    [
        (None, None, False),
        ({KEY: "run"}, None, True),
        ({KEY: "run"}, RAN, False),  # answered already: never again while it stands
        ({KEY: "run"}, SETTLED, True),  # removed and set again
        ({KEY: "yes"}, None, False),
        ({"other": "run"}, None, False),
    ],
)
def test_wanted(
    annotations: dict[str, str] | None, last: SelfTestStatus | None, wanted: bool
) -> None:
    assert trigger.wanted(annotations, last) is wanted


def test_settled_clears_the_trigger_once_the_annotation_is_gone() -> None:
    assert trigger.settled({}, RAN) == SETTLED
    assert trigger.settled({KEY: "run"}, RAN) is RAN
    assert trigger.settled({}, None) is None


def test_summary_names_the_failed_checks() -> None:
    result = SelfTestStatus(
        time=T0,
        passed=False,
        checks=[
            SelfTestCheck(name="chat", passed=True),
            SelfTestCheck(name="tools", passed=False, message="the model called no tool"),
            SelfTestCheck(name="vision", passed=None, message="no model declares it"),
        ],
    )
    assert trigger.summary(result) == "self-test failed: tools: the model called no tool"
