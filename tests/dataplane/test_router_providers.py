"""``GET /v1/providers``: each provider as the router sees it (breaker, limits, in-flight, last
error class), best first for a model, through a router serving manifests on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import (
    RouterProcess,
    openai_error,
    policy,
    provider,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[RouterProcess, FakeProvider, FakeProvider]]:
    good = FakeProvider("good", Flavor.OPENAI, [MODEL])
    bad = FakeProvider("bad", Flavor.OPENAI, [MODEL])
    other = FakeProvider("other", Flavor.OPENAI, ["other-model"])
    with running_fakes(good, bad, other):
        docs = _docs(good, bad, other)
        with running_router(tmp_path / "m", docs) as router:
            yield router, good, bad


def _docs(good: FakeProvider, bad: FakeProvider, other: FakeProvider) -> list[dict[str, Any]]:
    return [
        provider(
            "bad",
            "OpenAICompatible",
            bad.base_url,
            models=[MODEL],
            circuitBreaker={"failureThreshold": 1, "openDuration": "10m", "maxOpenDuration": "10m"},
        ),
        provider(
            "good",
            "OpenAICompatible",
            good.base_url,
            models=[MODEL],
            rateLimit={"requestsPerMinute": 600, "maxConcurrency": 4},
        ),
        provider("other", "OpenAICompatible", other.base_url, models=["other-model"]),
        policy(
            "chat",
            ["chat-*"],
            [{"name": "bad", "priority": 1, "model": MODEL}, {"name": "good", "priority": 2}],
            failover={"maxAttempts": 2},
        ),
    ]


def test_providers_best_first_with_the_router_s_own_state(
    world: tuple[RouterProcess, FakeProvider, FakeProvider],
) -> None:
    router, _good, bad = world
    before = router.get("/v1/providers", params={"model": "chat-x"}).json()
    assert [r["name"] for r in before["data"]] == ["bad", "good", "other"]
    assert [r.get("rank") for r in before["data"][:2]] == [1, 2]
    assert before["data"][0]["breaker"] == "Closed"
    assert before["data"][0]["lastError"] is None

    bad.set_faults(status=503)
    client = openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)
    answer = client.chat.completions.with_raw_response.create(
        model="chat-x", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.headers["x-signalbox-provider"] == "good"

    after = router.get("/v1/providers", params={"model": "chat-x"}).json()
    assert after["policy"] == "chat"
    rows = {r["name"]: r for r in after["data"]}
    assert [r["name"] for r in after["data"]] == ["good", "bad", "other"]
    assert rows["good"]["rank"] == 1
    assert rows["good"]["eligible"] is True
    assert rows["good"]["limits"]["maxConcurrency"] == 4
    assert rows["good"]["limits"]["slotsInUse"] == 0
    assert rows["good"]["inFlight"] == 0
    assert rows["good"]["lastError"] is None
    assert rows["bad"] | {"eligible": False, "reason": "BreakerOpen"} == rows["bad"]
    assert rows["bad"]["breaker"] == "Open"
    assert rows["bad"]["lastError"] == "ServerError"
    assert rows["bad"]["successRate"] < 1.0
    assert rows["other"]["reason"] == "NotInRoute"

    plain = router.get("/v1/providers").json()
    assert [r["name"] for r in plain["data"]][-1] == "bad"  # an open breaker sorts last
    assert openai_error(router.get("/v1/providers", params={"model": "nope"}), 404)
