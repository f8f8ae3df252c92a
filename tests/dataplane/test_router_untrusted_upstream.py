"""Upstreams are untrusted: the router, in manifests mode over real HTTP on loopback, in front of
an upstream scripted to misbehave (redirects, compressed bodies, malformed answers and streams,
echoed keys, endless streams). The official openai SDK is the client where streams matter."""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support import scripted
from tests.support.router import (
    Doc,
    RouterProcess,
    openai_error,
    policy,
    provider,
    running_router,
    secret,
    tool_exchange,
)

KEYS = {
    "openai": "sk-openai-key-0123456789",
    "anthropic": "sk-ant-key-0123456789",
    "azure": "azure-key-0123456789",
}
CIRCUIT = {"failureThreshold": 50, "openDuration": "1s", "maxOpenDuration": "2s"}
BIG = 2 * 1024 * 1024  # past the router's bound on one stream event
BOMB = 60 * 1024 * 1024
# Streams pause between events so the first one reaches the client alone: a stream that is bad
# in its first read fails over instead (tested in test_router_failover).


@dataclass(frozen=True)
class Scenario:
    type: str
    key: str | None
    behavior: scripted.Behavior
    spec: dict[str, Any]


def _anthropic_stream(*middle: dict[str, Any]) -> scripted.Behavior:
    """An Anthropic stream that says "Hi", then ``middle``, then stops; the events arrive apart."""
    start = {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
    text = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    events = [start, block, text, *middle, {"type": "message_stop"}]
    return scripted.stream([scripted.anthropic_event(e) for e in events], pause=0.05)


@functools.cache
def _bomb() -> scripted.Behavior:
    """A compressed answer of about 60 kB that inflates to 60 MB."""
    data = gzip.compress(json.dumps(scripted.completion("gzip-bomb", "a" * BOMB)).encode(), 9)
    return lambda h: scripted.answer(h, 200, None, [("content-encoding", "gzip")], raw=data)


def _tool_piece(**fields: str) -> bytes:
    """A chat chunk with one piece of a streamed tool call: ``name`` and ``arguments`` go
    under ``function``, the rest (``id``, ``type``) beside it."""
    function = {k: fields.pop(k) for k in ("name", "arguments") if k in fields}
    call = {"index": 0, **fields, "function": function}
    choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
    return scripted.sse_data({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                              "created": 1, "model": "m", "choices": [choice]})  # fmt: skip


def _usage_delta(output_tokens: int) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {}, "usage": {"output_tokens": output_tokens}}


def _scenarios(up: scripted.ScriptedUpstream, evil: scripted.ScriptedUpstream) -> dict[str, Any]:
    c = scripted.chunk_event
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    odd_index = {"choices": [{"index": [0], "delta": {"tool_calls": [call]}}]}
    padded_error = {"error": {"message": "y" * 290 + " " + KEYS["openai"]}}
    anthropic_error = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "y" * 290 + KEYS["anthropic"]},
    }
    multiline = (
        b'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,\n'
        b'data: "model": "m", "choices": [{"index": 0, "delta": {"content": "Hello"},\n'
        b'data: "finish_reason": "stop"}]}\n\n'
    )
    to_evil = evil.url + "/v1/chat/completions"
    return {
        "redirect-307-openai": ("OpenAICompatible", "openai", scripted.redirect(307, to_evil)),
        "redirect-302-openai": ("OpenAICompatible", "openai", scripted.redirect(302, to_evil)),
        "redirect-307-anthropic": ("Anthropic", "anthropic", scripted.redirect(307, to_evil)),
        "redirect-307-azure": ("AzureOpenAI", "azure", scripted.redirect(307, to_evil)),
        "gzip": ("OpenAICompatible", None, scripted.gzipped(scripted.completion("gzip"))),
        "gzip-bomb": ("OpenAICompatible", None, _bomb()),
        "empty-anthropic": ("Anthropic", "anthropic", scripted.json_answer({})),
        "big-answer": (
            "OpenAICompatible",
            None,
            scripted.json_answer(scripted.completion("big-answer", "y" * BIG)),
        ),
        "big-chunked-answer": (
            "OpenAICompatible",
            None,
            scripted.chunked_json(scripted.completion("big-chunked-answer", "z" * BIG)),
        ),
        "bad-usage": (
            "OpenAICompatible",
            None,
            scripted.json_answer(scripted.completion("bad-usage", usage={"prompt_tokens": "lots"})),
        ),
        "echo-key": (
            "OpenAICompatible",
            "openai",
            scripted.json_answer(
                {
                    "error": {
                        "message": f"bad key {KEYS['openai']}, and {KEYS['azure']} too",
                        "type": "invalid_request_error",
                        "code": "invalid",
                    }
                },
                400,
            ),
        ),
        "echo-key-escaped": (
            "OpenAICompatible",
            "openai",
            scripted.json_answer(
                None,
                400,
                raw=b'{"error": {"message": "key \\u0073k-openai-key-0123456789", "type": "x"}}',
            ),
        ),
        "malformed-frame": (
            "OpenAICompatible",
            None,
            scripted.stream([c("m", "Hel"), b"data: {not json\n\n", c("m", "lo")], pause=0.05),
        ),
        "no-done": (
            "OpenAICompatible",
            None,
            scripted.stream([c("m", "Hel"), c("m", "lo"), c("m", None, "stop")]),
        ),
        "broken-tool-arguments": (
            "OpenAICompatible",
            None,
            scripted.stream(
                [
                    _tool_piece(id="c1", type="function", name="f"),
                    _tool_piece(arguments='{"city": '),
                    _tool_piece(arguments="Paris}"),
                    c("m", None, "tool_calls"),
                    b"data: [DONE]\n\n",
                ],
                pause=0.05,
            ),
        ),
        "cut-before-finish": (
            "OpenAICompatible",
            None,
            scripted.stream([c("m", "Hel")], pause=0.05),
        ),
        "huge-event": (
            "OpenAICompatible",
            None,
            scripted.stream([c("m", "Hel"), c("m", "x" * BIG)], pause=0.05),
        ),
        "error-event": (
            "OpenAICompatible",
            None,
            scripted.stream(
                [c("m", "Hel"), b'data: {"error": {"message": "overloaded"}}\n\n'], pause=0.05
            ),
        ),
        "odd-index": (
            "OpenAICompatible",
            None,
            scripted.stream([c("m", "Hel"), scripted.sse_data(odd_index)], pause=0.05),
        ),
        "odd-index-first": (
            "OpenAICompatible",
            None,
            scripted.stream([scripted.sse_data(odd_index)]),
        ),
        "delta-not-object": (
            "OpenAICompatible",
            None,
            scripted.stream(
                [c("m", "Hel"), scripted.sse_data({"choices": [{"index": 0, "delta": "x"}]})],
                pause=0.05,
            ),
        ),
        "message-not-object": (
            "OpenAICompatible",
            None,
            scripted.json_answer(
                {**scripted.completion("m"), "choices": [{"index": 0, "message": "x"}]}
            ),
        ),
        "multiline-data": (
            "OpenAICompatible",
            None,
            scripted.stream([multiline, b"data: [DONE]\n\n"]),
        ),
        "anthropic-negative-usage": (
            "Anthropic",
            "anthropic",
            _anthropic_stream(_usage_delta(-999995)),
        ),
        "anthropic-huge-usage": (
            "Anthropic",
            "anthropic",
            _anthropic_stream(_usage_delta(10**400)),
        ),
        "echo-key-stream": (
            "OpenAICompatible",
            "openai",
            scripted.stream([c("m", "Hel"), scripted.sse_data(padded_error)], pause=0.05),
        ),
        "echo-key-stream-first": (
            "OpenAICompatible",
            "openai",
            scripted.stream([scripted.sse_data(padded_error)]),
        ),
        "echo-key-anthropic-stream": (
            "Anthropic",
            "anthropic",
            _anthropic_stream(anthropic_error),
        ),
        "endless": ("OpenAICompatible", None, scripted.endless("endless", up)),
        "held": ("OpenAICompatible", None, scripted.held("held", up)),
    }


@dataclass
class World:
    router: RouterProcess
    up: scripted.ScriptedUpstream
    evil: scripted.ScriptedUpstream

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return self.router.post("/v1/chat/completions", json=body)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.router.base_url, api_key="unused", max_retries=0)


def _docs(up: scripted.ScriptedUpstream, evil: scripted.ScriptedUpstream) -> list[Doc]:
    docs: list[Doc] = [secret("keys", KEYS)]
    for model, (ptype, key, behavior) in _scenarios(up, evil).items():
        up.behaviors[model] = behavior
        url = up.url + "/v1" if ptype == "OpenAICompatible" else up.url
        extra: dict[str, Any] = {"azure": {"apiVersion": "2024-10-21"}} if "azure" in model else {}
        docs.append(
            provider(
                f"p-{model}",
                ptype,
                url,
                models=[model],
                secret=("keys", key) if key else None,
                circuitBreaker=CIRCUIT,
                rateLimit={"maxConcurrency": 1, "tokensPerMinute": 100_000_000},
                **extra,
            )
        )
    # A policy that renames the model: its requests are always re-encoded.
    docs.append(policy("renamed", ["renamed"], [{"name": "p-gzip", "model": "gzip"}]))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    up, evil = scripted.ScriptedUpstream({}), scripted.ScriptedUpstream({})
    with up.running(), evil.running():
        for model in ("redirect-307-openai", "redirect-302-openai", "redirect-307-anthropic"):
            evil.behaviors[model] = scripted.json_answer(scripted.completion(model))
        folder = tmp_path_factory.mktemp("untrusted") / "manifests"
        with running_router(folder, _docs(up, evil)) as router:
            yield World(router, up, evil)


def _rested(world: World) -> None:
    """Nothing is held once requests are over: every gauge of what the router holds is there,
    for every provider, and at zero."""
    text = world.router.metrics()
    for gauge in (
        "signalbox_router_in_flight",
        "signalbox_router_limiter_slots_in_use",
        "signalbox_router_breaker_trials",
    ):
        series = [line for line in text.splitlines() if line.startswith(gauge + "{")]
        assert len(series) == len(_scenarios(world.up, world.evil)), f"{gauge} is missing"
        held = [line for line in series if not line.endswith(" 0.0")]
        assert held == [], f"{gauge} is not at rest: {held}"


@pytest.mark.parametrize(
    "model",
    ["redirect-307-openai", "redirect-302-openai", "redirect-307-anthropic", "redirect-307-azure"],
)
def test_a_redirect_is_never_followed(world: World, model: str) -> None:
    resp = world.chat(model)
    error = openai_error(resp, 502)
    assert error["code"] == "InvalidResponse"
    assert "redirect refused" in error["message"]
    assert world.evil.seen == []  # neither the prompt nor the key went anywhere else
    assert len(world.up.requests_for(model)) == 3  # a lone provider, tried maxAttempts times


def test_inflating_answers_are_bounded_across_concurrent_requests(world: World) -> None:
    """Four compression bombs at once (60 kB each, 60 MB inflated): each is refused, the
    router's peak memory grows by far less than they would inflate to together, and a small
    compressed answer still goes through."""
    pid = world.router.proc.pid if world.router.proc else 0
    before = _peak_kib(pid)

    async def bombs() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=world.router.url, timeout=30) as client:
            body = {"model": "gzip-bomb", "messages": [{"role": "user", "content": "hi"}]}
            return list(
                await asyncio.gather(
                    *(client.post("/v1/chat/completions", json=body) for _ in range(4))
                )
            )

    for resp in asyncio.run(bombs()):
        assert openai_error(resp, 502)["code"] == "InvalidResponse"
    growth_mib = (_peak_kib(pid) - before) / 1024
    assert growth_mib < 200, f"peak memory grew by {growth_mib:.0f} MiB"
    assert world.chat("gzip").status_code == 200


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_answers_are_asked_for_uncompressed_and_a_compressed_one_is_read(world: World) -> None:
    resp = world.chat("gzip")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "hello"
    assert "content-encoding" not in resp.headers
    assert world.up.requests_for("gzip")[-1].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(("model", "letter"), [("big-answer", "y"), ("big-chunked-answer", "z")])
def test_a_large_answer_arriving_in_many_reads_is_read_whole(
    world: World, model: str, letter: str
) -> None:
    resp = world.chat(model)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["choices"][0]["message"]["content"] == letter * BIG


def test_an_empty_anthropic_answer_is_not_a_completion(world: World) -> None:
    error = openai_error(world.chat("empty-anthropic"), 502)
    assert error["code"] == "InvalidResponse"


def test_a_non_numeric_usage_is_an_invalid_answer_that_holds_nothing(world: World) -> None:
    for _ in range(4):  # maxConcurrency is 1: a leaked slot would turn these into 429s
        error = openai_error(world.chat("bad-usage"), 502)
        assert error["code"] == "InvalidResponse"
    _rested(world)


def test_a_body_too_deep_to_re_encode_is_a_400_and_holds_nothing(world: World) -> None:
    deep: Any = "hi"
    for _ in range(400):
        deep = [deep]
    body = {"model": "renamed", "messages": [{"role": "user", "content": deep}]}
    for _ in range(3):  # maxConcurrency is 1
        resp = world.router.post("/v1/chat/completions", json=body)
        assert openai_error(resp, 400)
    assert world.chat("renamed").status_code == 200
    _rested(world)


@pytest.mark.parametrize("model", ["echo-key", "echo-key-escaped"])
def test_an_upstream_error_body_reaches_the_client_without_any_key(
    world: World, model: str
) -> None:
    resp = world.chat(model)
    error = openai_error(resp, 400)
    assert "[REDACTED]" in error["message"]
    for key in KEYS.values():
        assert key not in resp.text


def test_a_malformed_event_ends_the_stream_with_an_error_event(world: World) -> None:
    got: list[str | None] = []
    chunks = world.client().chat.completions.create(
        model="malformed-frame", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="malformed upstream event"):
        got.extend(chunk.choices[0].delta.content for chunk in chunks)
    assert got == ["Hel"]  # the bad frame itself never reached the client


def test_a_stream_that_finished_without_done_is_completed(world: World) -> None:
    text = [
        chunk.choices[0].delta.content or ""
        for chunk in world.client().chat.completions.create(
            model="no-done", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert "".join(text) == "Hello"
    raw = world.chat("no-done", stream=True).text
    assert raw.endswith("data: [DONE]\n\n")


def test_streamed_tool_arguments_that_are_not_json_end_a_messages_stream_cleanly(
    world: World,
) -> None:
    # The Anthropic SDK parses a tool's input as its pieces arrive: broken arguments from the
    # provider must reach it as an error event, never as a piece its parser chokes on.
    root = world.router.base_url.removesuffix("/v1")
    claude = anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0)
    with (
        pytest.raises(anthropic.APIError, match="tool call arguments are not JSON"),
        claude.messages.stream(
            model="broken-tool-arguments",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream,
    ):
        stream.get_final_message()
    _rested(world)


def test_a_stream_that_finished_without_usage_or_done_is_completed_in_other_apis(
    world: World,
) -> None:
    # Translated into Messages or Responses events, the stream carries usage the upstream never
    # sent: it is still complete, and its usage is estimated from the text.
    root = world.router.base_url.removesuffix("/v1")
    messages = anthropic.Anthropic(base_url=root, api_key="unused", max_retries=0)
    with messages.messages.stream(
        model="no-done", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()
    assert [block.text for block in message.content if block.type == "text"] == ["Hello"]
    assert message.stop_reason == "end_turn"
    events = world.client().responses.create(model="no-done", input="hi", stream=True)
    done = [e.response for e in events if e.type == "response.completed"]
    assert [r.output_text for r in done] == ["Hello"]
    _rested(world)


@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("cut-before-finish", "ended before it finished"),
        ("huge-event", "exceeds"),
        ("error-event", "overloaded"),
        ("odd-index", "not an object with an index"),
        ("delta-not-object", "delta that is not an object"),
        ("anthropic-negative-usage", "not whole numbers"),
        ("anthropic-huge-usage", "not whole numbers"),
    ],
)
def test_a_broken_stream_ends_with_an_error_event_and_never_done(
    world: World, model: str, said: str
) -> None:
    raw = world.chat(model, stream=True).text
    assert "[DONE]" not in raw
    last = json.loads(raw.strip().splitlines()[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_stream_error"
    assert said in last["error"]["message"]
    _rested(world)


def test_odd_token_counts_never_reach_the_books(world: World) -> None:
    for model in ("anthropic-negative-usage", "anthropic-huge-usage"):
        assert "[DONE]" not in world.chat(model, stream=True).text
    usage = world.router.get("/v1/usage")
    assert usage.status_code == 200
    rows = [r for r in usage.json()["data"] if r["provider"].startswith("p-anthropic-")]
    assert rows, usage.text
    for row in rows:
        assert all(v >= 0 for v in row.values() if isinstance(v, int | float)), row
        assert float(row["total_cost"]) >= 0
    _rested(world)  # and /metrics still answers


def test_a_malformed_first_event_is_an_invalid_response_not_our_bug(world: World) -> None:
    error = openai_error(world.chat("odd-index-first", stream=True), 502)
    assert error["code"] == "InvalidResponse"
    _rested(world)


def test_an_answer_whose_choices_have_no_message_object_is_invalid(world: World) -> None:
    error = openai_error(world.chat("message-not-object"), 502)
    assert error["code"] == "InvalidResponse"


def test_an_event_whose_data_spans_several_lines_reaches_the_sdk_whole(world: World) -> None:
    chunks = world.client().chat.completions.create(
        model="multiline-data", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Hello"


@pytest.mark.parametrize("arguments", ["[" * 50_000 + "]" * 50_000, "{not json"])
def test_tool_arguments_an_anthropic_provider_cannot_take_are_a_400(
    world: World, arguments: str
) -> None:
    body = {"model": "empty-anthropic", "messages": tool_exchange(arguments)}
    error = openai_error(world.router.post("/v1/chat/completions", json=body), 400)
    assert "tool call arguments" in error["message"]
    _rested(world)


def _no_part_of_a_key(text: str) -> None:
    for key in KEYS.values():
        assert key[:6] not in text, f"{key[:6]}… reached the client"


@pytest.mark.parametrize("model", ["echo-key-stream", "echo-key-anthropic-stream"])
def test_a_stream_error_event_reaches_the_client_without_any_part_of_a_key(
    world: World, model: str
) -> None:
    raw = world.chat(model, stream=True).text
    last = json.loads(raw.strip().splitlines()[-1].removeprefix("data: "))
    assert "[REDACTED]" in last["error"]["message"]
    _no_part_of_a_key(raw)


def test_a_first_stream_event_error_reaches_the_client_without_any_part_of_a_key(
    world: World,
) -> None:
    resp = world.chat("echo-key-stream-first", stream=True)
    assert "[REDACTED]" in openai_error(resp, 502)["message"]
    _no_part_of_a_key(resp.text)


def test_a_client_that_leaves_a_stream_closes_the_upstream_at_once(world: World) -> None:
    errors_before = world.router.metric(
        "signalbox_router_upstream_errors_total", provider="p-endless"
    )
    body = {"model": "endless", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", world.router.url + "/v1/chat/completions", json=body, timeout=10
    ) as resp:
        lines = resp.iter_lines()
        assert next(lines).startswith("data: ")
        left = time.monotonic()
    deadline = time.monotonic() + 10
    while "endless" not in world.up.gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    closed_after = world.up.gone_at["endless"] - left
    print(f"upstream closed {closed_after * 1000:.0f} ms after the client left")
    assert closed_after < 1.0  # the stream would otherwise run for a minute
    time.sleep(0.2)
    _rested(world)
    # The client's cancellation, not the provider's failure.
    after = world.router.metric("signalbox_router_upstream_errors_total", provider="p-endless")
    assert after == errors_before
    assert world.router.excluded("endless") == {}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_client_that_leaves_before_its_answer_starts_closes_the_upstream_at_once(
    world: World, stream: bool
) -> None:
    world.up.gone_at.pop("held", None)
    errors_before = world.router.metric("signalbox_router_upstream_errors_total", provider="p-held")
    gone_before = world.router.metric(
        "signalbox_router_requests_total", provider="p-held", code="499"
    )
    body = {"model": "held", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before any answer
        httpx.post(world.router.url + "/v1/chat/completions", json=body, timeout=0.5)
    left = time.monotonic()
    deadline = left + 10
    while "held" not in world.up.gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    closed_after = world.up.gone_at["held"] - left
    print(f"upstream closed {closed_after * 1000:.0f} ms after the client left")
    assert closed_after < 1.0  # the upstream would otherwise be held for a minute
    time.sleep(0.2)
    _rested(world)
    # Booked as the client's cancellation, not the provider's failure.
    assert (
        world.router.metric("signalbox_router_upstream_errors_total", provider="p-held")
        == errors_before
    )
    assert (
        world.router.metric("signalbox_router_requests_total", provider="p-held", code="499")
        == gone_before + 1
    )
    assert world.router.excluded("held") == {}
