"""Per-request control headers and the policy's total timeout, through the real router process.

Every scenario is its own RoutingPolicy (the model name) over its own fake providers, ordered
by priority. The timeouts are short but generous enough for a loaded machine: the assertions on
time only say that a request ended well before its attempts and back-offs would have.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import (
    Doc,
    RouterProcess,
    openai_error,
    policy,
    provider,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"
TIMEOUTS = {"connect": "500ms", "firstToken": "10s", "streamIdle": "10s", "request": "20s"}
QUICK = {"backoff": {"base": "10ms", "max": "10ms"}, "maxAttempts": 3}
SLOW_BACKOFF = {"backoff": {"base": "2s", "max": "2s"}, "maxAttempts": 3}
SCENARIOS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "attempts": (("a", "b", "c"), QUICK),
    "off": (("a", "b"), QUICK),
    "deadline": (("a", "b", "c"), SLOW_BACKOFF),
    "deadline-stream": (("a", "b"), QUICK),
    "policy-total": (("a", "b"), {**QUICK, "totalTimeout": "1s"}),
    "longer-header": (("a", "b"), {**QUICK, "totalTimeout": "1s"}),
}


@dataclass
class World:
    router: RouterProcess
    fakes: dict[str, FakeProvider]

    def fake(self, scenario: str, suffix: str) -> FakeProvider:
        return self.fakes[f"{scenario}-{suffix}"]

    def chat(
        self, scenario: str, headers: dict[str, str] | None = None, *, stream: bool = False
    ) -> httpx.Response:
        body = {"model": scenario, "messages": [{"role": "user", "content": "hi"}]}
        return self.router.post(
            "/v1/chat/completions", json={**body, "stream": stream}, headers=headers
        )


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    docs: list[Doc] = []
    for scenario, (suffixes, failover) in SCENARIOS.items():
        refs = []
        for priority, suffix in enumerate(suffixes, start=1):
            name = f"{scenario}-{suffix}"
            url = fakes[name].base_url
            docs.append(
                provider(name, "OpenAICompatible", url, priority=priority, timeouts=TIMEOUTS)
            )
            refs.append({"name": name, "model": MODEL})
        docs.append(policy(scenario, [scenario], refs, failover=failover))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fakes = {
        f"{scenario}-{s}": FakeProvider(f"{scenario}-{s}", Flavor.OPENAI, [MODEL])
        for scenario, (suffixes, _) in SCENARIOS.items()
        for s in suffixes
    }
    with running_fakes(*fakes.values()):
        folder = tmp_path_factory.mktemp("router-controls") / "manifests"
        with running_router(folder, _docs(fakes)) as router:
            yield World(router, fakes)


def _fail_all(world: World, scenario: str, *, latency: float = 0.0) -> None:
    for suffix in SCENARIOS[scenario][0]:
        world.fake(scenario, suffix).set_faults(status=503, latency=latency)


@pytest.mark.parametrize(("asked", "made"), [("1", 1), ("2", 2), ("9", 3)])
def test_max_attempts_header_lowers_the_attempts_and_is_clamped_to_the_policy(
    world: World, asked: str, made: int
) -> None:
    _fail_all(world, "attempts")
    before = sum(len(world.fake("attempts", s).seen) for s in "abc")
    resp = world.chat("attempts", {"x-signalbox-max-attempts": asked})
    assert openai_error(resp, 502)["code"] == "ServerError"
    assert resp.headers["x-signalbox-attempts"] == str(made)
    assert sum(len(world.fake("attempts", s).seen) for s in "abc") == before + made


def test_failover_off_makes_one_attempt(world: World) -> None:
    first, second = world.fake("off", "a"), world.fake("off", "b")
    first.set_faults(status=503)
    resp = world.chat("off", {"x-signalbox-failover": "off"})
    assert openai_error(resp, 502)["code"] == "ServerError"
    assert resp.headers["x-signalbox-attempts"] == "1"
    assert len(second.seen) == 0
    served = world.chat("off", {"x-signalbox-failover": "on"})  # the default, said out loud
    assert served.status_code == 200, served.text
    assert served.headers["x-signalbox-provider"] == "off-b"
    first.clear_faults()


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-signalbox-max-attempts", "0"),
        ("x-signalbox-max-attempts", "11"),
        ("x-signalbox-max-attempts", "two"),
        ("x-signalbox-timeout", "soon"),
        ("x-signalbox-timeout", "0s"),
        ("x-signalbox-timeout", "2h"),
        ("x-signalbox-failover", "maybe"),
        ("x-signalbox-priority", "urgent"),
    ],
)
def test_a_bad_control_header_is_a_400_naming_it(world: World, header: str, value: str) -> None:
    before = len(world.fake("off", "a").seen)
    error = openai_error(world.chat("off", {header: value}), 400)
    assert error["param"] == header
    assert error["code"] == "invalid_header"
    assert header in error["message"]
    assert len(world.fake("off", "a").seen) == before  # nothing was sent upstream


@pytest.mark.parametrize("value", ["1500ms", "1.5"])
def test_timeout_header_ends_attempts_and_backoffs_with_a_504(world: World, value: str) -> None:
    # Each attempt fails after 0.5s, then 2s of back-off: three attempts take over 5s.
    _fail_all(world, "deadline", latency=0.5)
    started = time.monotonic()
    resp = world.chat("deadline", {"x-signalbox-timeout": value})
    elapsed = time.monotonic() - started
    error = openai_error(resp, 504)
    assert error["code"] == "total_timeout"
    assert resp.headers["x-signalbox-attempts"] == "1"  # the back-off would pass the deadline
    assert elapsed < 4.0, "the router ran the attempts past the request's deadline"


def test_timeout_header_cuts_a_slow_attempt(world: World) -> None:
    slow = world.fake("deadline-stream", "a")
    slow.set_faults(latency=5.0)
    started = time.monotonic()
    resp = world.chat("deadline-stream", {"x-signalbox-timeout": "1s"})
    elapsed = time.monotonic() - started
    assert openai_error(resp, 504)["code"] == "total_timeout"
    assert elapsed < 4.0
    assert len(world.fake("deadline-stream", "b").seen) == 0  # no time was left for it
    # Counted as a timeout of that attempt; the provider is not shut out for it.
    assert (
        world.router.metric(
            "signalbox_router_upstream_errors_total",
            provider="deadline-stream-a",
            outcome="Timeout",
        )
        == 1
    )
    slow.clear_faults()
    assert world.chat("deadline-stream").headers["x-signalbox-provider"] == "deadline-stream-a"


def test_policy_total_timeout_ends_the_request_with_a_504(world: World) -> None:
    for suffix in "ab":
        world.fake("policy-total", suffix).set_faults(latency=5.0)
    started = time.monotonic()
    resp = world.chat("policy-total")
    elapsed = time.monotonic() - started
    assert openai_error(resp, 504)["code"] == "total_timeout"
    assert elapsed < 4.0
    for suffix in "ab":
        world.fake("policy-total", suffix).clear_faults()


def test_timeout_header_cannot_lengthen_the_policys(world: World) -> None:
    world.fake("longer-header", "a").set_faults(latency=3.0)
    started = time.monotonic()
    resp = world.chat("longer-header", {"x-signalbox-timeout": "30s"})
    assert openai_error(resp, 504)["code"] == "total_timeout"
    assert time.monotonic() - started < 2.5
    world.fake("longer-header", "a").clear_faults()


def test_a_stream_is_cut_at_the_total_timeout(world: World) -> None:
    fake = world.fake("deadline-stream", "b")
    world.fake("deadline-stream", "a").set_faults(status=503)
    fake.set_faults(chunk_interval=0.5)  # the fake's reply takes several chunks
    resp = world.chat("deadline-stream", {"x-signalbox-timeout": "1s"}, stream=True)
    assert resp.status_code == 200
    assert "data: [DONE]" not in resp.text
    assert "the request timeout passed" in resp.text
    world.fake("deadline-stream", "a").clear_faults()
    fake.clear_faults()


def test_the_other_client_apis_take_the_controls(world: World) -> None:
    first, second = world.fake("off", "a"), world.fake("off", "b")
    first.set_faults(status=503)
    before = len(second.seen)
    body = {"model": "off", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    resp = world.router.post("/v1/messages", json=body, headers={"x-signalbox-failover": "off"})
    assert resp.status_code == 502, resp.text
    assert resp.json()["type"] == "error"  # Anthropic's shape on this route
    assert len(second.seen) == before
    bad = world.router.post("/v1/messages", json=body, headers={"x-signalbox-timeout": "later"})
    assert bad.status_code == 400
    assert "x-signalbox-timeout" in bad.json()["error"]["message"]
    first.clear_faults()
