"""The fake provider's Anthropic flavor, driven through the official ``anthropic`` SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from anthropic.types import Message, MessageParam, TextBlock, ToolParam, ToolUseBlock

from signalbox_fake import FakeProvider, Flavor

MODEL = "claude-fake-1"
MODELS = [MODEL, "claude-fake-2"]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
HELLO: list[MessageParam] = [{"role": "user", "content": "what is the weather like"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()
BMP = {"role": "user", "content": [
    {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}
]}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider("cloud", Flavor.ANTHROPIC, MODELS).running_in_thread() as provider:
        yield provider


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as sdk:
        yield sdk


def _text(message: Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


def _tool_uses(message: Message) -> list[ToolUseBlock]:
    return [b for b in message.content if isinstance(b, ToolUseBlock)]


def _raw_post(fake: FakeProvider, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{fake.url}/v1/messages", json=body, headers=headers, timeout=10)


def test_plain_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.role == "assistant"
    assert _text(message) == "Hello from cloud. You said: what is the weather like"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == 5 + 3
    assert message.usage.output_tokens == len(_text(message).split())
    assert message.usage.cache_read_input_tokens == 0


def test_stream_matches_plain_reply(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == _text(plain)
    assert _text(final) == _text(plain)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_stream_event_sequence_on_the_wire(fake: FakeProvider) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True}
    resp = _raw_post(fake, body, **{"anthropic-version": "2023-06-01"})
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in resp.text.split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    datas = [json.loads(f.split("\n")[1].removeprefix("data: ")) for f in frames]
    deltas = len(names) - 6
    assert names == [
        "message_start", "content_block_start", "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert deltas > 1
    assert [d["type"] for d in datas] == names
    start = datas[0]["message"]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == (
        [],
        None,
        1,
    )
    assert datas[1]["content_block"] == {"type": "text", "text": ""}
    assert datas[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    [call] = _tool_uses(first)
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert call.input == {"city": "example", "days": 1}
    turns: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "sunny"}]},
    ]  # fmt: skip
    second = client.messages.create(model=MODEL, max_tokens=100, messages=turns, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    assert not _tool_uses(second)
    assert _text(second).endswith("You said: what is the weather like")


def test_tool_choice_names_the_tool(client: anthropic.Anthropic) -> None:
    other: ToolParam = {"name": "other", "input_schema": {"type": "object", "properties": {}}}
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER, other],
        tool_choice={"type": "tool", "name": "other"},
    )  # fmt: skip
    assert [c.name for c in _tool_uses(message)] == ["other"]
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER], tool_choice={"type": "none"}
    )
    assert message.stop_reason == "end_turn"


def test_streamed_tool_use(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [call] = _tool_uses(final)
    assert call.id.startswith("toolu_")
    assert call.input == {"city": "example", "days": 1}
    assert final.usage.output_tokens > 1


def test_system_prompt_counts_as_input(client: anthropic.Anthropic) -> None:
    bare = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    as_text = client.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, system="be brief and kind"
    )
    as_blocks = client.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO,
        system=[{"type": "text", "text": "be brief"}, {"type": "text", "text": "and kind"}],
    )  # fmt: skip
    assert as_text.usage.input_tokens == bare.usage.input_tokens + 4
    assert as_blocks.usage.input_tokens == as_text.usage.input_tokens
    assert _text(as_text) == _text(bare)


def test_stop_sequence_and_max_tokens(client: anthropic.Anthropic) -> None:
    stopped = client.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, stop_sequences=["said:"]
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "said:"
    assert _text(stopped) == "Hello from cloud. You"
    cut = client.messages.create(model=MODEL, max_tokens=2, messages=HELLO)
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 2


def test_models_list(client: anthropic.Anthropic) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == MODELS
    assert models[0].type == "model"
    assert models[0].display_name == "Claude Fake 1"
    assert models[0].created_at.tzinfo is not None


def test_image_content_accepted(client: anthropic.Anthropic) -> None:
    image_turn: list[MessageParam] = [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "describe these"},
    ]}]  # fmt: skip
    message = client.messages.create(model=MODEL, max_tokens=100, messages=image_turn)
    assert "I see 2 image(s)." in _text(message)
    assert message.usage.input_tokens == 2 + 3 + 2 * 85


def test_wrong_api_key(fake: FakeProvider, client: anthropic.Anthropic) -> None:
    fake.set_faults(api_key="right")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 401
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    good = _raw_post(fake, body, **{"anthropic-version": "2023-06-01", "x-api-key": "right"})
    assert good.status_code == 200


def test_right_api_key_through_sdk(fake: FakeProvider) -> None:
    fake.set_faults(api_key="right")
    with anthropic.Anthropic(base_url=fake.base_url, api_key="right", max_retries=0) as sdk:
        assert sdk.messages.create(model=MODEL, max_tokens=10, messages=HELLO).content


def test_rate_limit_carries_retry_after(fake: FakeProvider, client: anthropic.Anthropic) -> None:
    fake.set_faults(status=429, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "2"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_overloaded(fake: FakeProvider, client: anthropic.Anthropic) -> None:
    fake.set_faults(status=529)
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.status_code == 529


def test_unknown_model(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nope", max_tokens=10, messages=HELLO)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_missing_version_header(fake: FakeProvider) -> None:
    resp = _raw_post(fake, {"model": MODEL, "max_tokens": 10, "messages": HELLO})
    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": MODEL, "messages": HELLO}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 0, "messages": HELLO}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 10, "messages": []}, "messages"),
        ({"model": MODEL, "max_tokens": 10, "messages": [{"role": "bot", "content": "x"}]}, "role"),
        ({"max_tokens": 10, "messages": HELLO}, "model"),
        ({"model": MODEL, "max_tokens": 10, "messages": [BMP]}, "media_type"),
    ],
)
def test_invalid_requests(fake: FakeProvider, body: dict[str, Any], fragment: str) -> None:
    resp = _raw_post(fake, body, **{"anthropic-version": "2023-06-01"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert fragment in resp.json()["error"]["message"]


def test_cut_stream_raises(fake: FakeProvider, client: anthropic.Anthropic) -> None:
    # The SDK reports a body cut short as a connection error whose cause is the transport's.
    fake.set_faults(cut_stream_after=3)
    with (
        pytest.raises(anthropic.APIConnectionError) as caught,
        client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream,
    ):
        list(stream.text_stream)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


async def test_async_client() -> None:
    async with FakeProvider("cloud", Flavor.ANTHROPIC, MODELS) as fake:
        sdk = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        async with sdk:
            message = await sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
            async with sdk.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
                final = await stream.get_final_message()
    assert _text(final) == _text(message)
    assert final.usage.output_tokens == message.usage.output_tokens
