"""The provider test suite is bounded as probes are: an answer too large (inflated or not), a
body that drips, a stream that never ends, over real HTTP on loopback."""

from __future__ import annotations

import time
import tracemalloc

import httpx
import pytest

from signalbox_api.provider import LLMProviderSpec
from signalbox_operator.selftest import checks, suite
from signalbox_operator.status.provider_status import Refs
from tests.support.misbehaving import Misbehaving


def _suite(url: str, client: httpx.AsyncClient, per_check: float = 2.0) -> suite.Suite:
    spec = LLMProviderSpec.model_validate(
        {
            "type": "OpenAICompatible",
            "endpoint": {"url": url},
            "models": [{"name": "m", "capabilities": ["chat", "streaming"]}],
        }
    )
    return suite.Suite(spec, Refs(base_url=url), client, None, per_check)


@pytest.mark.parametrize("behaviour", ["bomb", "huge", "endless"])
async def test_an_answer_too_large_fails_its_check_within_the_cap(
    server: Misbehaving, behaviour: str
) -> None:
    async with httpx.AsyncClient() as client:
        s = _suite(server.url(behaviour, "a"), client)
        tracemalloc.start()
        try:
            for check in ("chat", "streaming"):
                result = await s._timed(check, "m", checks.CHECKS[check], 5.0)
                assert result.passed is False, result
                refused = (str(suite.MAX_ANSWER), "the stream came compressed")
                assert any(r in result.message for r in refused), result.message
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * suite.MAX_ANSWER, f"peaked at {peak} bytes"


async def test_a_body_that_drips_fails_at_the_checks_deadline(server: Misbehaving) -> None:
    async with httpx.AsyncClient() as client:
        s = _suite(server.url("drip", "a"), client)
        started = time.monotonic()
        result = await s._timed("chat", "m", checks.CHECKS["chat"], 1.0)
    assert result.passed is False
    assert result.message == "no answer within 1s"
    assert time.monotonic() - started < 2


async def test_the_whole_suite_has_one_deadline(
    server: Misbehaving, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suite, "SUITE_SECONDS", 1.5)
    async with httpx.AsyncClient() as client:
        s = _suite(server.url("drip", "a"), client, per_check=1.0)
        started = time.monotonic()
        results = {r.check: r for r in await s.run()}
    assert time.monotonic() - started < 3
    assert results["listModels"].passed is False
    for check in ("chat", "streaming"):
        assert results[check].passed is False
        said = results[check].message
        assert said == "the suite's time ran out" or said.startswith("no answer within 0."), said
