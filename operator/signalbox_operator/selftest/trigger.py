"""Runs the provider test suite once when an LLMProvider asks for it by annotation.

``signalbox.dev/self-test=run`` asks for one run (the suite costs tokens, so nothing runs it on
a schedule). The operator never edits what people (or Git) own, so it does not remove the
annotation: ``status.selfTest.trigger`` records the value a run answered, and is cleared once the
annotation is gone, so removing the annotation and setting it again runs the suite again. The
decisions are pure; ``run`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

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
