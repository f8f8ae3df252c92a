"""Runs the provider test suite once when an LLMProvider asks for it by annotation.

``signalbox.dev/self-test=run`` asks for one run (the suite costs tokens, so nothing runs it on
a schedule). The operator never edits what people (or Git) own, so it does not remove the
annotation: ``status.selfTest.trigger`` records the value a run answered, and is cleared once the
annotation is gone, so removing the annotation and setting it again runs the suite again. The
decisions are pure; ``run`` does the I/O.

A run is recorded (``started``: the trigger, no verdict yet) before the suite sends anything, so
an operator that takes over mid-run does not run it again: it finds the record of a run no one
finishes and closes it as ``interrupted``. Runs of one provider are ``COOLDOWN_SECONDS`` apart,
however often the annotation is toggled, and at most ``MAX_SUITES`` run at once in the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import httpx

from signalbox_api.provider import (
    SELF_TEST_ANNOTATION,
    LLMProviderSpec,
    LLMProviderStatus,
    SelfTestCheck,
    SelfTestStatus,
)
from signalbox_operator.selftest import suite
from signalbox_operator.status.discovery import clip
from signalbox_operator.status.provider_status import Refs

RUN = "run"
PER_CHECK_SECONDS = 30.0
COOLDOWN_SECONDS = 60.0
MAX_SUITES = 4


def _value(annotations: Mapping[str, str] | None) -> str | None:
    return (annotations or {}).get(SELF_TEST_ANNOTATION)


def settled(
    annotations: Mapping[str, str] | None, last: SelfTestStatus | None
) -> SelfTestStatus | None:
    """``last`` with its trigger cleared once the annotation is gone (the result stays)."""
    if last is not None and last.trigger is not None and _value(annotations) is None:
        return last.model_copy(update={"trigger": None})
    return last


def wanted(annotations: Mapping[str, str] | None, last: SelfTestStatus | None) -> bool:
    """Whether the annotation asks for a run that has not happened yet."""
    return _value(annotations) == RUN and (last is None or last.trigger != RUN)


def started(now: datetime) -> SelfTestStatus:
    """The record of a run that starts now: written before the suite sends anything."""
    return SelfTestStatus(time=now, passed=None, trigger=RUN)


def running(last: SelfTestStatus | None) -> bool:
    """Whether ``last`` records a run that has not finished."""
    return last is not None and last.trigger == RUN and last.passed is None


STOPPED = "the operator running it stopped"


def interrupted(last: SelfTestStatus, why: str = STOPPED) -> SelfTestStatus:
    """A run that never finished: the operator running it stopped (or lost its lease), or the
    suite itself failed (``why``)."""
    check = SelfTestCheck(
        name="suite",
        passed=False,
        message=f"interrupted: {why}; remove the annotation and set it again to run the suite "
        "again",
    )
    return last.model_copy(update={"passed": False, "checks": [check]})


def next_allowed(ended: datetime | None) -> datetime | None:
    """When the next run of a provider whose last run ended at ``ended`` may start."""
    return None if ended is None else ended + timedelta(seconds=COOLDOWN_SECONDS)


def summary(result: SelfTestStatus) -> str:
    """The Event message for a failed run: which checks failed, and why."""
    bad = [f"{c.name}: {c.message or 'failed'}" for c in result.checks if c.passed is False]
    return clip("self-test failed: " + "; ".join(bad), 1024)


async def run(
    client: httpx.AsyncClient,
    spec: LLMProviderSpec,
    refs: Refs,
    status: LLMProviderStatus | None,
    now: datetime,
) -> SelfTestStatus:
    known = status if status is not None and status.models else None
    results = await suite.Suite(spec, refs, client, known, PER_CHECK_SECONDS).run()
    checks = [
        SelfTestCheck(
            name=r.check,
            passed=r.passed,
            model=r.model[:253] if r.model else None,
            latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms,
            message=clip(r.message, 512),
        )
        for r in results
    ]
    return SelfTestStatus(
        time=now, passed=not suite.failed(results), trigger=RUN, checks=checks[:16]
    )
