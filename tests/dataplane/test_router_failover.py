"""Failover through the real router process: which upstream failures move a request on, which are
answered at once, and how the local breaker and 429 cooling keep a provider out of the way.

One router serves the module. Every scenario is its own RoutingPolicy (the model name is the
scenario's name) over its own providers and fake servers, ordered by priority, so breaker and
cooling state never leak from one test into another. Timeouts and back-off are short.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Faults, Flavor
from tests.support.router import (
    Doc,
    RouterProcess,
    closed_port_url,
    openai_error,
    policy,
    provider,
    running_fakes,
    running_router,
    secret,
)

MODEL = "gpt-4o-mini"
TIMEOUTS = {"connect": "500ms", "firstToken": "500ms", "streamIdle": "1s", "request": "5s"}
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "1s"}
SLOW = 2.0  # seconds of fake latency, well past firstToken
BREAKER_COOLDOWN = 2.0  # every provider's circuitBreaker.openDuration here
CIRCUIT = {"failureThreshold": 3, "openDuration": "2s", "maxOpenDuration": "30s"}
RIGHT_KEY, WRONG_KEY = "sk-right-key-for-auth-a", "sk-wrong-key-for-auth-a"


@dataclass(frozen=True)
class Member:
    """One provider of a scenario: a fake of ``flavor``; ``None``: a closed port, or the paced
    upstream for the ``stream-cut`` scenario."""

    suffix: str
    flavor: Flavor | None = Flavor.OPENAI
    wants_key: str | None = None  # the fake refuses any other key
    sends_key: str | None = None  # the key the router has for this provider
    spec: dict[str, Any] = field(default_factory=dict)


_TYPES = {
    Flavor.OPENAI: "OpenAICompatible",
    Flavor.ANTHROPIC: "Anthropic",
    Flavor.OLLAMA: "Ollama",
    Flavor.VLLM: "VLLM",
}
AB = (Member("a"), Member("b"))
SCENARIOS: dict[str, tuple[tuple[Member, ...], dict[str, Any]]] = {
    "connect": ((Member("dead", None), Member("b")), {}),
    "timeout": (AB, {}),
    "server-error": (AB, {}),
    "retry-after": (AB, {}),
    "no-retry-after": (AB, {}),
    "fail-fast-openai": (AB, {}),
    "fail-fast-vllm": ((Member("a", Flavor.VLLM), Member("b")), {}),
    "fail-fast-anthropic": ((Member("a", Flavor.ANTHROPIC), Member("b")), {}),
    "fail-fast-ollama": ((Member("a", Flavor.OLLAMA), Member("b")), {}),
    "auth": ((Member("a", wants_key=RIGHT_KEY, sends_key=WRONG_KEY), Member("b")), {}),
    # A request already routed to "a" backs off a whole second after "x" fails: "a" refused its
    # key to another request meanwhile.
    "auth-meanwhile": (
        (Member("x"), Member("a", wants_key=RIGHT_KEY, sends_key=WRONG_KEY), Member("c")),
        {"backoff": {"base": "1s", "max": "1s"}, "maxAttempts": 3},
    ),
    "half-open": (
        (
            Member("x", spec={"circuitBreaker": {"failureThreshold": 100}}),
            Member(
                "a",
                spec={
                    "circuitBreaker": {
                        "failureThreshold": 1,
                        "openDuration": "1s",
                        "halfOpenMaxRequests": 1,
                    },
                    "timeouts": {"firstToken": "5s"},  # its trial is slow: 1 s
                },
            ),
            Member("c"),
        ),
        {"maxAttempts": 3},
    ),
    "max-attempts": ((*AB, Member("c")), {"maxAttempts": 2}),
    "busy-fallback": ((Member("a"), Member("b", spec={"rateLimit": {"maxConcurrency": 1}})), {}),
    "all-fail": (AB, {}),
    "all-timeout": (AB, {}),
    "none-eligible": ((Member("a", None, spec={"suspend": True}),), {}),
    "stream-cut": ((Member("a", None), Member("b")), {}),
    "stream-cut-fake": (AB, {}),
    "stream-cut-early": (AB, {}),
    "stream-idle": (AB, {}),
    "stream-deadline": (
        (Member("a", spec={"timeouts": {"streamIdle": "10s", "request": "1s"}}), Member("b")),
        {},
    ),
    "breaker": (AB, {}),
    "breaker-trial": (AB, {}),
    "malformed": (AB, {}),
    "all-429": (AB, {}),
}


@dataclass
class PacedUpstream:
    """An OpenAI-style upstream whose streams stop midway: two chunks, a pause, then the
    connection drops inside the chunked body.

    The fake's ``cut_stream_after`` drops the connection in the same breath as it writes the
    chunks, so whether the router reads a chunk before it learns of the cut is a race (aiohttp
    reports the broken connection before handing out data it had buffered). The pause here makes
    sure the router has relayed the first chunks when the cut comes.
    """

    pause: float = 0.3
    requests: int = 0
    url: str = ""

    CHUNKS = ("Hello", " from")

    @contextmanager
    def running(self) -> Iterator[PacedUpstream]:
        server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        thread = threading.Thread(target=self._serve, args=(server,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() below; close() alone does not
            server.close()
            thread.join(5)

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        headers, _, body = head.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        self.requests += 1
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for piece in self.CHUNKS:
            delta = {"content": piece}
            event = {
                "object": "chat.completion.chunk",
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            data = b"data: " + json.dumps(event).encode() + b"\n\n"
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        time.sleep(self.pause)  # no terminating chunk: the stream is cut here


@dataclass
class World:
    router: RouterProcess
    fakes: dict[str, FakeProvider]  # by provider name
    paced: PacedUpstream

    def fake(self, scenario: str, suffix: str) -> FakeProvider:
        return self.fakes[f"{scenario}-{suffix}"]

    def chat(
        self, scenario: str, *, stream: bool = False, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = {"model": scenario, "messages": [{"role": "user", "content": "hi"}]}
        return self.router.post(
            "/v1/chat/completions", json={**body, "stream": stream}, headers=headers
        )


def _docs(fakes: dict[str, FakeProvider], urls: dict[str, str]) -> list[Doc]:
    docs: list[Doc] = [secret("keys", {"wrong": WRONG_KEY, "any": "sk-any-key-for-the-fakes"})]
    for scenario, (members, failover) in SCENARIOS.items():
        refs = []
        for priority, m in enumerate(members, start=1):
            name = f"{scenario}-{m.suffix}"
            spec = dict(m.spec)
            timeouts = {**TIMEOUTS, **spec.pop("timeouts", {})}
            fake = fakes.get(name)
            if m.flavor is None or fake is None:
                url, ptype = urls.get(name) or closed_port_url(), "OpenAICompatible"
            else:
                url, ptype = fake.base_url, _TYPES[m.flavor]
            docs.append(
                provider(
                    name,
                    ptype,
                    url,
                    secret=_key(m, ptype),
                    priority=priority,
                    timeouts=timeouts,
                    circuitBreaker={**CIRCUIT, **spec.pop("circuitBreaker", {})},
                    **spec,
                )
            )
            refs.append({"name": name, "model": MODEL})
        docs.append(policy(scenario, [scenario], refs, failover={**FAILOVER, **failover}))
    return docs


def _key(m: Member, ptype: str) -> tuple[str, str] | None:
    if m.sends_key == WRONG_KEY:
        return ("keys", "wrong")
    return ("keys", "any") if ptype == "Anthropic" else None  # the CRD requires one there


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fakes = {
        f"{scenario}-{m.suffix}": FakeProvider(
            f"{scenario}-{m.suffix}", m.flavor, [MODEL], faults=Faults(api_key=m.wants_key)
        )
        for scenario, (members, _) in SCENARIOS.items()
        for m in members
        if m.flavor is not None
    }
    with running_fakes(*fakes.values()), PacedUpstream().running() as paced:
        folder = tmp_path_factory.mktemp("router-failover") / "manifests"
        with running_router(folder, _docs(fakes, {"stream-cut-a": paced.url})) as router:
            yield World(router, fakes, paced)


def _served_by(resp: httpx.Response, provider_name: str, attempts: int) -> None:
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-signalbox-provider"] == provider_name
    assert resp.headers["x-signalbox-attempts"] == str(attempts)


def test_connect_failure_moves_to_the_next_provider(world: World) -> None:
    resp = world.chat("connect")
    _served_by(resp, "connect-b", attempts=2)
    assert resp.json()["choices"][0]["message"]["content"].startswith("Hello from connect-b.")
    assert (
        world.router.metric(
            "signalbox_router_upstream_errors_total",
            provider="connect-dead",
            outcome="ConnectFailure",
        )
        == 1
    )
    assert (
        world.router.metric(
            "signalbox_router_failovers_total", provider="connect-dead", outcome="ConnectFailure"
        )
        == 1
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_timeout_moves_to_the_next_provider(world: World, stream: bool) -> None:
    slow, fast = world.fake("timeout", "a"), world.fake("timeout", "b")
    slow.set_faults(latency=SLOW)
    before = len(slow.seen)
    started = time.monotonic()
    resp = world.chat("timeout", stream=stream)
    elapsed = time.monotonic() - started
    _served_by(resp, "timeout-b", attempts=2)
    assert len(slow.seen) == before + 1  # it was tried, and given up on
    assert fast.seen[-1].body is not None
    assert fast.seen[-1].body["stream"] is stream
    assert elapsed < SLOW - 0.5, "the router waited for the slow provider"
    if stream:
        assert resp.text.rstrip().endswith("data: [DONE]")
    slow.clear_faults()


def test_server_error_moves_to_the_next_provider(world: World) -> None:
    bad, good = world.fake("server-error", "a"), world.fake("server-error", "b")
    bad.set_faults(status=503, times=1)
    resp = world.chat("server-error")
    _served_by(resp, "server-error-b", attempts=2)
    assert len(bad.seen) == 1
    assert len(good.seen) == 1
    # Healed: the preferred provider serves the next request itself.
    _served_by(world.chat("server-error"), "server-error-a", attempts=1)


def test_429_with_retry_after_cools_the_provider_for_that_long(world: World) -> None:
    limited, other = world.fake("retry-after", "a"), world.fake("retry-after", "b")
    limited.set_faults(status=429, retry_after=1)
    _served_by(world.chat("retry-after"), "retry-after-b", attempts=2)
    assert len(limited.seen) == 1
    assert world.router.excluded("retry-after") == {"retry-after-a": "RateLimited"}

    # Cooling: the next request does not even try the provider that said 429.
    _served_by(world.chat("retry-after"), "retry-after-b", attempts=1)
    assert len(limited.seen) == 1
    assert len(other.seen) == 2

    limited.clear_faults()
    time.sleep(1.1)  # its Retry-After has passed
    assert world.router.excluded("retry-after") == {}
    _served_by(world.chat("retry-after"), "retry-after-a", attempts=1)
    assert (
        world.router.metric(
            "signalbox_router_failovers_total", provider="retry-after-a", outcome="RateLimited"
        )
        == 1
    )


def test_429_without_retry_after_still_cools_the_provider(world: World) -> None:
    limited = world.fake("no-retry-after", "a")
    limited.set_faults(status=429)
    _served_by(world.chat("no-retry-after"), "no-retry-after-b", attempts=2)
    limited.clear_faults()
    for _ in range(2):  # the default cooling (seconds) outlasts these requests
        _served_by(world.chat("no-retry-after"), "no-retry-after-b", attempts=1)
    assert len(limited.seen) == 1
    assert world.router.excluded("no-retry-after") == {"no-retry-after-a": "RateLimited"}


@pytest.mark.parametrize(
    ("flavor", "status"),
    [
        ("openai", 400),
        ("openai", 404),
        ("openai", 422),
        ("vllm", 400),
        ("vllm", 404),
        ("anthropic", 400),
        ("anthropic", 404),
        ("ollama", 400),
        ("ollama", 404),
    ],
)
def test_client_errors_are_answered_at_once(world: World, flavor: str, status: int) -> None:
    scenario = f"fail-fast-{flavor}"
    first, second = world.fake(scenario, "a"), world.fake(scenario, "b")
    first.set_faults(status=status, times=1)
    before = len(second.seen)
    resp = world.chat(scenario)
    assert resp.status_code == status
    assert resp.headers["x-signalbox-provider"] == f"{scenario}-a"
    assert resp.headers["x-signalbox-attempts"] == "1"
    error = openai_error(resp)
    assert error["message"] == f"Injected failure: HTTP {status}"
    assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"
    assert len(second.seen) == before, "a client error must not be retried elsewhere"
    # Not the provider's fault: it is neither cooled nor tripped, and serves the next request.
    assert world.router.excluded(scenario) == {}
    _served_by(world.chat(scenario), f"{scenario}-a", attempts=1)


def test_an_upstream_401_stops_traffic_to_that_provider_at_once(world: World) -> None:
    refusing, other = world.fake("auth", "a"), world.fake("auth", "b")
    _served_by(world.chat("auth"), "auth-b", attempts=2)
    assert refusing.seen[-1].authorized is False
    assert (
        world.router.metric(
            "signalbox_router_upstream_errors_total", provider="auth-a", outcome="AuthFailed"
        )
        == 1
    )
    # One refusal opened its breaker (for maxOpenDuration): the refused key gets no more traffic.
    assert world.router.excluded("auth") == {"auth-a": "BreakerOpen"}
    for _ in range(3):
        _served_by(world.chat("auth"), "auth-b", attempts=1)
    time.sleep(BREAKER_COOLDOWN + 0.2)  # openDuration is not enough for a refused key
    _served_by(world.chat("auth"), "auth-b", attempts=1)
    assert len(refusing.seen) == 1
    assert len(other.seen) == 5


def test_a_key_refused_meanwhile_is_not_sent_again_by_a_request_routed_before(
    world: World,
) -> None:
    first_fails, refusing = world.fake("auth-meanwhile", "x"), world.fake("auth-meanwhile", "a")
    first_fails.set_faults(status=500)
    answers: dict[str, httpx.Response] = {}

    def ask(who: str, after: float) -> None:
        time.sleep(after)
        answers[who] = world.chat("auth-meanwhile")

    # "early" reaches a at about 1 s and is refused; "late", routed at 0.5 s while a was still
    # in good standing, comes out of its back-off at about 1.5 s.
    threads = [threading.Thread(target=ask, args=a) for a in (("early", 0.0), ("late", 0.5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _served_by(answers["early"], "auth-meanwhile-c", attempts=3)
    _served_by(answers["late"], "auth-meanwhile-c", attempts=2)
    assert len(refusing.seen) == 1
    first_fails.clear_faults()


def test_half_open_trials_are_capped_even_for_requests_routed_before(world: World) -> None:
    failing, trial = world.fake("half-open", "x"), world.fake("half-open", "a")
    failing.set_faults(status=500)
    trial.set_faults(status=500, times=1)
    _served_by(world.chat("half-open"), "half-open-c", attempts=3)  # a's one failure trips it
    assert world.router.excluded("half-open") == {"half-open-a": "BreakerOpen"}
    time.sleep(1.2)  # openDuration: half-open, one trial at a time
    trial.set_faults(latency=1.0)
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(world.chat("half-open"))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = sorted(r.headers["x-signalbox-provider"] for r in answers)
    assert served == ["half-open-a"] + ["half-open-c"] * 4
    assert len(trial.seen) == 2  # the failure that tripped it, then the one trial
    assert world.router.excluded("half-open") == {}  # the trial worked: closed
    failing.clear_faults()
    trial.clear_faults()


def test_max_attempts_is_respected(world: World) -> None:
    a, b, c = (world.fake("max-attempts", s) for s in "abc")
    a.set_faults(status=500)
    b.set_faults(status=502)
    resp = world.chat("max-attempts")
    assert resp.status_code == 502
    assert resp.headers["x-signalbox-attempts"] == "2"
    error = openai_error(resp)
    assert error["code"] == "ServerError"
    assert "after 2 attempt(s)" in error["message"]
    assert (len(a.seen), len(b.seen), len(c.seen)) == (1, 1, 0)
    a.clear_faults()
    b.clear_faults()


def test_a_failed_attempt_waits_for_a_busy_fallback_instead_of_giving_up(world: World) -> None:
    failing, busy = world.fake("busy-fallback", "a"), world.fake("busy-fallback", "b")
    failing.set_faults(status=503)
    busy.set_faults(latency=0.3)
    answers: list[httpx.Response] = []
    requests = [
        threading.Thread(target=lambda: answers.append(world.chat("busy-fallback")))
        for _ in range(2)
    ]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    # Each failed at a, then found b: one at once, the other once b's one slot was free.
    assert [(r.status_code, r.headers["x-signalbox-provider"]) for r in answers] == [
        (200, "busy-fallback-b")
    ] * 2
    assert len(busy.seen) == 2


def test_all_providers_failing_is_a_502(world: World) -> None:
    a, b = world.fake("all-fail", "a"), world.fake("all-fail", "b")
    a.set_faults(status=500)
    b.set_faults(status=503)
    resp = world.chat("all-fail")
    assert resp.status_code == 502
    assert resp.headers["x-signalbox-attempts"] == "3"  # a, b, then a again: maxAttempts
    error = openai_error(resp)
    assert error["type"] == "upstream_error"
    assert error["code"] == "ServerError"
    assert "all-fail-a: HTTP 500" in error["message"]  # the last failure
    assert (len(a.seen), len(b.seen)) == (2, 1)
    a.clear_faults()
    b.clear_faults()


def test_all_providers_timing_out_is_a_504(world: World) -> None:
    a, b = world.fake("all-timeout", "a"), world.fake("all-timeout", "b")
    a.set_faults(latency=SLOW)
    b.set_faults(latency=SLOW)
    started = time.monotonic()
    resp = world.chat("all-timeout")
    assert time.monotonic() - started < 2 * SLOW - 1
    assert resp.status_code == 504
    assert resp.headers["x-signalbox-attempts"] == "3"
    error = openai_error(resp)
    assert error["type"] == "timeout"
    assert error["code"] == "Timeout"
    a.clear_faults()
    b.clear_faults()


def test_no_eligible_provider_is_a_503_with_retry_after(world: World) -> None:
    assert world.router.excluded("none-eligible") == {"none-eligible-a": "Suspended"}
    resp = world.chat("none-eligible")
    assert resp.status_code == 503
    assert int(resp.headers["retry-after"]) >= 1
    error = openai_error(resp)
    assert error["code"] == "no_eligible_provider"
    assert error["type"] == "service_unavailable"


def test_unknown_model_is_a_404(world: World) -> None:
    resp = world.chat("no-such-model-anywhere")
    assert resp.status_code == 404
    error = openai_error(resp)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "no-such-model-anywhere" in error["message"]


def _sse_events(raw: str) -> list[str]:
    return [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]


def _stream(world: World, scenario: str) -> tuple[httpx.Headers, list[str]]:
    """Status-checked headers and the raw SSE data lines of a streamed chat."""
    body = {"model": scenario, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream(
        "POST", world.router.url + "/v1/chat/completions", json=body, timeout=10, trust_env=False
    ) as resp:
        assert resp.status_code == 200
        raw = "".join(resp.iter_text())
    return resp.headers, _sse_events(raw)


def test_stream_cut_midway_ends_with_an_error_event_and_is_not_retried(world: World) -> None:
    other = world.fake("stream-cut", "b")
    headers, events = _stream(world, "stream-cut")
    assert headers["x-signalbox-provider"] == "stream-cut-a"
    assert "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    relayed = "".join(c["choices"][0]["delta"]["content"] for c in chunks[:-1])
    assert relayed == "Hello from"  # the client got the start ...
    assert set(chunks[-1]) == {"error"}  # ... and then an error, as the last event
    assert set(chunks[-1]["error"]) == {"message", "type", "param", "code"}
    assert chunks[-1]["error"]["code"] == "upstream_stream_error"
    assert world.paced.requests == 1
    assert other.seen == [], "a stream that reached the client must not be retried"

    # The official SDK sees the same stream end as an error, not as a finished answer.
    client = openai.OpenAI(base_url=world.router.base_url, api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="stream-cut", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text: list[str] = []
    with pytest.raises(openai.APIError, match="upstream stream failed"):
        text.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "".join(text) == "Hello from"
    assert world.paced.requests == 2
    assert other.seen == []


def test_stream_cut_by_the_fake_never_mixes_two_providers(world: World) -> None:
    cut, other = world.fake("stream-cut-fake", "a"), world.fake("stream-cut-fake", "b")
    cut.set_faults(cut_stream_after=3)
    headers, events = _stream(world, "stream-cut-fake")
    assert len(cut.seen) == 1
    if headers["x-signalbox-provider"] == "stream-cut-fake-a":
        # The router relayed a chunk before it saw the cut: an error ends it, no retry.
        assert events[-1] != "[DONE]"
        assert set(json.loads(events[-1])) == {"error"}
        assert other.seen == []
    else:
        # The cut came before the router read a byte (the race PacedUpstream explains): the
        # other provider serves the whole answer, and the client sees nothing of the first.
        assert headers["x-signalbox-attempts"] == "2"
        assert events[-1] == "[DONE]"
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
        )
        assert text == "Hello from stream-cut-fake-b. You said: hi"
        assert len(other.seen) == 1
    cut.clear_faults()


def test_stream_that_fails_before_its_first_byte_is_retried(world: World) -> None:
    cut, other = world.fake("stream-cut-early", "a"), world.fake("stream-cut-early", "b")
    cut.set_faults(cut_stream_after=0)
    resp = world.chat("stream-cut-early", stream=True)
    _served_by(resp, "stream-cut-early-b", attempts=2)
    assert _sse_events(resp.text)[-1] == "[DONE]"
    assert (len(cut.seen), len(other.seen)) == (1, 1)
    cut.clear_faults()


@pytest.mark.parametrize(
    ("scenario", "after", "reason"),
    [
        ("stream-idle", 1.0, "no data within the stream idle timeout"),  # streamIdle
        ("stream-deadline", 1.0, "the request timeout passed"),  # request, streamIdle 10s
    ],
)
def test_a_stream_gone_silent_ends_with_an_error_event_in_time(
    world: World, scenario: str, after: float, reason: str
) -> None:
    silent, other = world.fake(scenario, "a"), world.fake(scenario, "b")
    silent.set_faults(stall_stream_after=3)
    started = time.monotonic()
    headers, events = _stream(world, scenario)
    elapsed = time.monotonic() - started
    silent.clear_faults()
    assert headers["x-signalbox-provider"] == f"{scenario}-a"
    assert "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"  # the start got through
    assert chunks[-1]["error"]["code"] == "upstream_stream_error"
    assert reason in chunks[-1]["error"]["message"]
    assert after <= elapsed < after + 1.0
    assert other.seen == [], "a stream that reached the client must not be retried"


def test_breaker_skips_a_failing_provider_then_lets_a_trial_through(world: World) -> None:
    failing, other = world.fake("breaker", "a"), world.fake("breaker", "b")
    failing.set_faults(status=500)
    for _ in range(3):  # the breaker's threshold
        _served_by(world.chat("breaker"), "breaker-b", attempts=2)
    assert len(failing.seen) == 3
    assert world.router.excluded("breaker") == {"breaker-a": "BreakerOpen"}
    _served_by(world.chat("breaker"), "breaker-b", attempts=1)
    assert len(failing.seen) == 3

    failing.clear_faults()
    time.sleep(BREAKER_COOLDOWN + 0.2)
    assert world.router.excluded("breaker") == {}
    _served_by(world.chat("breaker"), "breaker-a", attempts=1)  # the trial, and it worked
    _served_by(world.chat("breaker"), "breaker-a", attempts=1)  # closed again
    assert len(failing.seen) == 5
    assert len(other.seen) == 4


def test_breaker_trial_answered_with_a_client_error_does_not_block_the_provider(
    world: World,
) -> None:
    failing = world.fake("breaker-trial", "a")
    failing.set_faults(status=500)
    for _ in range(3):
        _served_by(world.chat("breaker-trial"), "breaker-trial-b", attempts=2)
    assert world.router.excluded("breaker-trial") == {"breaker-trial-a": "BreakerOpen"}
    time.sleep(BREAKER_COOLDOWN + 0.2)

    # The trial request is one the upstream rejects as the client's mistake: answered at once.
    failing.set_faults(status=400, times=1)
    assert world.chat("breaker-trial").status_code == 400
    # That said nothing against the provider; it must stay usable, not wait forever on a trial.
    assert world.router.excluded("breaker-trial") == {}
    _served_by(world.chat("breaker-trial"), "breaker-trial-a", attempts=1)


def test_malformed_answer_moves_to_the_next_provider(world: World) -> None:
    broken, good = world.fake("malformed", "a"), world.fake("malformed", "b")
    broken.set_faults(malformed=True)
    _served_by(world.chat("malformed"), "malformed-b", attempts=2)
    assert len(broken.seen) == 1
    assert len(good.seen) == 1
    broken.clear_faults()


def test_every_provider_saying_429_is_a_429_with_retry_after(world: World) -> None:
    a, b = world.fake("all-429", "a"), world.fake("all-429", "b")
    a.set_faults(status=429)  # no Retry-After from upstream
    b.set_faults(status=429)
    first = world.chat("all-429")
    assert first.status_code == 429
    assert int(first.headers["retry-after"]) >= 1
    assert first.json()["error"]["type"] == "rate_limit_error"
    # Both are cooling now: the router answers 429 itself, without calling them.
    calls = len(a.seen) + len(b.seen)
    again = world.chat("all-429")
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) >= 1
    assert len(a.seen) + len(b.seen) == calls
    a.clear_faults()
    b.clear_faults()
