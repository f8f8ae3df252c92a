"""Failover until the first token, retries on a lone provider, and outcomes for what providers
really answer: the router process in manifests mode over real HTTP on loopback, in front of an
upstream scripted to misbehave (the first provider of each scenario) and a healthy fake (the
second, where there is one). The official SDKs are the clients where streams matter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import scripted
from tests.support.router import (
    Doc,
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
    secret,
)

TIMEOUTS = {"connect": "500ms", "firstToken": "600ms", "streamIdle": "1s", "request": "5s"}
FAILOVER = {"backoff": {"base": "10ms", "max": "50ms"}, "retryAfterMaxWait": "1s"}
CIRCUIT = {"failureThreshold": 50, "openDuration": "1s", "maxOpenDuration": "2s"}
KEY = "sk-upstream-key-0123456789"


def _role(model: str) -> bytes:
    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    return scripted.sse_data(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [choice],
        }
    )


ERROR_EVENT = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'


class Countdown:
    """A behavior that misbehaves ``times`` times, then answers as ``then``."""

    def __init__(self, times: int, bad: scripted.Behavior, then: scripted.Behavior) -> None:
        self.left, self.bad, self.then = times, bad, then
        self.lock = threading.Lock()

    def __call__(self, h: scripted.Handler) -> None:
        with self.lock:
            bad, self.left = self.left > 0, self.left - 1
        (self.bad if bad else self.then)(h)


def _reset(h: scripted.Handler) -> None:
    """The connection goes, with no answer at all."""
    h.close_connection = True
    h.connection.close()


def _good_stream(model: str) -> scripted.Behavior:
    c = scripted.chunk_event
    return scripted.stream(
        [_role(model), c(model, "Hello"), c(model, None, "stop"), b"data: [DONE]\n\n"]
    )


def _scenarios() -> dict[str, tuple[scripted.Behavior, bool]]:
    """Model -> (the scripted first provider's behavior, whether a healthy second follows)."""
    c = scripted.chunk_event
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    echo = scripted.completion("echo", f"your key is {KEY}")
    return {
        "role-then-error": (scripted.stream([_role("m"), ERROR_EVENT]), True),
        "role-then-malformed": (scripted.stream([_role("m"), b"data: {nope\n\n"]), True),
        "role-then-cut": (scripted.stream([_role("m")], end=False), True),
        "role-then-silence": (scripted.stream([_role("m")], pause=3.0), True),
        "content-then-error": (scripted.stream([c("m", "Hi"), ERROR_EVENT], pause=0.05), True),
        "after-finish": (
            scripted.stream([c("m", "Hi"), c("m", None, "stop"), c("m", "more")], pause=0.05),
            True,
        ),
        "stray-index": (scripted.stream([_role("m"), _index(3)]), True),
        "held-in-order": (_good_stream("held-in-order"), False),
        "lone-500": (
            Countdown(
                1,
                scripted.json_answer({"error": {"message": "boom"}}, 500),
                scripted.json_answer(scripted.completion("lone-500")),
            ),
            False,
        ),
        "lone-reset": (
            Countdown(1, _reset, scripted.json_answer(scripted.completion("lone-reset"))),
            False,
        ),
        "lone-stream": (
            Countdown(1, scripted.stream([_role("m"), ERROR_EVENT]), _good_stream("lone-stream")),
            False,
        ),
        "lone-committed": (scripted.stream([c("m", "Hi"), ERROR_EVENT], pause=0.05), False),
        "lone-always-500": (scripted.json_answer({"error": {"message": "boom"}}, 500), False),
        "payment-required": (scripted.json_answer({"error": {"message": "no credit"}}, 402), True),
        "insufficient-quota": (scripted.json_answer(quota, 429), True),
        "no-choices": (scripted.json_answer({**scripted.completion("m"), "choices": []}), True),
        "echo": (scripted.json_answer(echo), False),
    }


def _index(index: int) -> bytes:
    choice = {"index": index, "delta": {"content": "Hi"}, "finish_reason": None}
    return scripted.sse_data(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [choice],
        }
    )


@dataclass
class World:
    router: RouterProcess
    up: scripted.ScriptedUpstream
    backup: FakeProvider

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return self.router.post("/v1/chat/completions", json=body)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.router.base_url, api_key="unused", max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.router.url, api_key="unused", max_retries=0)

    def tried(self, model: str) -> int:
        return len(self.up.requests_for(model))


def _docs(up: scripted.ScriptedUpstream, backup: FakeProvider) -> list[Doc]:
    docs: list[Doc] = [secret("keys", {"openai": KEY})]
    docs.append(provider("backup", "OpenAICompatible", backup.base_url, timeouts=TIMEOUTS))
    for model, (behavior, with_backup) in _scenarios().items():
        up.behaviors[model] = behavior
        docs.append(
            provider(
                f"p-{model}",
                "OpenAICompatible",
                up.url + "/v1",
                models=[model],
                secret=("keys", "openai"),
                timeouts=TIMEOUTS,
                circuitBreaker=CIRCUIT,
            )
        )
        refs: list[dict[str, Any]] = [{"name": f"p-{model}", "model": model, "priority": 1}]
        if with_backup:
            refs.append({"name": "backup", "model": "gpt-4o-mini", "priority": 2})
        docs.append(policy(model, [model], refs, failover=FAILOVER))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    up = scripted.ScriptedUpstream({})
    backup = FakeProvider("backup", Flavor.OPENAI, ["gpt-4o-mini"])
    with up.running(), running_fakes(backup):
        folder = tmp_path_factory.mktemp("first-token") / "manifests"
        with running_router(folder, _docs(up, backup)) as router:
            yield World(router, up, backup)


def _streamed_text(world: World, model: str) -> tuple[str, list[Any]]:
    chunks = list(
        world.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


@pytest.mark.parametrize(
    "model",
    [
        "role-then-error",
        "role-then-malformed",
        "role-then-cut",
        "role-then-silence",
        "stray-index",
    ],
)
def test_a_stream_that_fails_before_its_first_token_fails_over(world: World, model: str) -> None:
    text, _ = _streamed_text(world, model)
    assert text.startswith("Hello from backup"), text
    assert world.tried(model) >= 1


@pytest.mark.parametrize("model", ["content-then-error", "after-finish"])
def test_past_the_first_token_a_failure_ends_the_stream_with_an_error(
    world: World, model: str
) -> None:
    before = len(world.backup.seen)
    with pytest.raises(openai.APIError):
        _streamed_text(world, model)
    assert len(world.backup.seen) == before, "nothing is retried past the commit point"


def test_held_events_reach_the_client_whole_and_in_order(world: World) -> None:
    text, chunks = _streamed_text(world, "held-in-order")
    assert text == "Hello"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[1].choices[0].delta.content == "Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_stream_failing_before_its_first_token_fails_over_through_messages(
    world: World,
) -> None:
    with world.anthropic().messages.stream(
        model="role-then-error", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Hello from backup")


def test_a_stream_failing_before_its_first_token_fails_over_through_responses(
    world: World,
) -> None:
    events = list(world.openai().responses.create(model="role-then-error", input="hi", stream=True))
    done = [e for e in events if e.type == "response.completed"]
    assert done, [e.type for e in events]
    assert done[0].response.output_text.startswith("Hello from backup")


def test_an_odd_stream_through_messages_is_an_error_not_an_empty_turn(world: World) -> None:
    with (
        pytest.raises(anthropic.APIError),
        world.anthropic().messages.stream(
            model="after-finish", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        stream.get_final_message()


@pytest.mark.parametrize(
    ("model", "attempts"), [("lone-500", 2), ("lone-reset", 2)], ids=["500", "connection-reset"]
)
def test_a_lone_provider_is_tried_again_after_a_transient_failure(
    world: World, model: str, attempts: int
) -> None:
    resp = world.chat(model)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-signalbox-attempts"] == str(attempts)
    assert world.tried(model) == attempts


def test_a_lone_provider_stream_is_tried_again_before_its_first_token(world: World) -> None:
    text, _ = _streamed_text(world, "lone-stream")
    assert text == "Hello"
    assert world.tried("lone-stream") == 2


def test_a_lone_provider_is_not_tried_again_past_the_first_token(world: World) -> None:
    with pytest.raises(openai.APIError):
        _streamed_text(world, "lone-committed")
    assert world.tried("lone-committed") == 1


def test_retries_on_a_lone_provider_stop_at_max_attempts(world: World) -> None:
    resp = world.chat("lone-always-500")
    assert resp.status_code == 502
    assert world.tried("lone-always-500") == 3  # the policy's default maxAttempts
    resp = world.chat("lone-always-500", stream=False)
    assert world.tried("lone-always-500") == 6


@pytest.mark.parametrize("model", ["payment-required", "insufficient-quota"])
def test_a_spent_quota_fails_over_and_cools_the_provider(world: World, model: str) -> None:
    resp = world.chat(model)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-signalbox-provider"] == "backup"
    assert world.tried(model) == 1
    again = world.chat(model)
    assert again.headers["x-signalbox-attempts"] == "1", "the spent provider is skipped"
    assert world.tried(model) == 1
    explained = world.router.explain(model)
    excluded = {e["provider"]: e["reason"] for e in explained["excluded"]}
    assert f"p-{model}" in excluded


def test_an_answer_without_choices_fails_over(world: World) -> None:
    resp = world.chat("no-choices")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-signalbox-provider"] == "backup"
    assert resp.json()["choices"], "a client can read the first choice"


def test_an_answer_echoing_a_key_is_masked(world: World) -> None:
    resp = world.chat("echo")
    assert resp.status_code == 200, resp.text
    assert KEY not in resp.text
    assert "[REDACTED]" in resp.json()["choices"][0]["message"]["content"]
