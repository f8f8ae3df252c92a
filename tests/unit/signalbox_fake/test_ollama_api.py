"""The fake provider's Ollama flavor, driven through the official ``ollama`` client."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from signalbox_fake import FakeProvider, Flavor, content

CHAT_MODEL = "llama3.2:1b"
MODELS = [CHAT_MODEL, "nomic-embed-text"]
HELLO = [{"role": "user", "content": "tell me a story"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider("local", Flavor.OLLAMA, MODELS).running_in_thread() as provider:
        yield provider


@pytest.fixture
def client(fake: FakeProvider) -> ollama.Client:
    return ollama.Client(host=fake.url, timeout=10)


def test_version(fake: FakeProvider) -> None:
    resp = httpx.get(f"{fake.url}/api/version", timeout=10)
    assert resp.json() == {"version": "0.12.3"}


def test_list_models(client: ollama.Client) -> None:
    models = client.list().models
    assert [m.model for m in models] == MODELS
    first = models[0]
    assert first.details is not None
    assert first.details.format == "gguf"
    assert first.details.family == "llama"
    assert first.details.parameter_size == "1B"
    assert first.size is not None
    assert first.size > 0
    assert first.digest is not None
    assert len(first.digest) == 64
    assert first.modified_at is not None


def test_ps_lists_models_once_used(client: ollama.Client) -> None:
    assert client.ps().models == []
    client.chat(model=CHAT_MODEL, messages=HELLO)
    [loaded] = client.ps().models
    assert loaded.model == CHAT_MODEL
    assert loaded.size_vram == loaded.size
    assert loaded.expires_at is not None
    assert loaded.expires_at > datetime.datetime.now(datetime.UTC)


def test_chat_plain(client: ollama.Client) -> None:
    resp = client.chat(model=CHAT_MODEL, messages=HELLO)
    assert resp.model == CHAT_MODEL
    assert resp.message.role == "assistant"
    assert resp.message.content == "Hello from local. You said: tell me a story"
    assert resp.done is True
    assert resp.done_reason == "stop"
    assert resp.prompt_eval_count == 4 + 3
    assert resp.eval_count == 9
    for duration in (resp.total_duration, resp.load_duration, resp.eval_duration):
        assert isinstance(duration, int)
        assert duration > 0
    assert resp.created_at is not None
    assert resp.created_at.endswith("Z")


def test_chat_stream_matches_plain(client: ollama.Client) -> None:
    plain = client.chat(model=CHAT_MODEL, messages=HELLO)
    chunks = list(client.chat(model=CHAT_MODEL, messages=HELLO, stream=True))
    assert len(chunks) > 2
    assert "".join(c.message.content or "" for c in chunks) == plain.message.content
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    last = chunks[-1]
    assert last.message.content == ""
    assert last.done_reason == "stop"
    assert last.eval_count == plain.eval_count
    assert last.prompt_eval_count == plain.prompt_eval_count


def test_tools_round_trip(client: ollama.Client) -> None:
    first = client.chat(model=CHAT_MODEL, messages=HELLO, tools=[WEATHER])
    assert first.message.tool_calls is not None
    [call] = first.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "example", "days": 1}
    turns: list[Any] = [*HELLO, first.message, {"role": "tool", "content": "sunny"}]
    second = client.chat(model=CHAT_MODEL, messages=turns, tools=[WEATHER])
    assert not second.message.tool_calls
    assert second.message.content == "Hello from local. You said: tell me a story"


def test_streamed_tool_call(client: ollama.Client) -> None:
    chunks = list(client.chat(model=CHAT_MODEL, messages=HELLO, tools=[WEATHER], stream=True))
    calls = [call for c in chunks for call in c.message.tool_calls or []]
    assert [c.function.arguments for c in calls] == [{"city": "example", "days": 1}]
    assert chunks[-1].done is True
    assert not chunks[-1].message.tool_calls


def test_format_json_and_schema(client: ollama.Client) -> None:
    as_json = client.chat(model=CHAT_MODEL, messages=HELLO, format="json")
    assert isinstance(json.loads(as_json.message.content or ""), dict)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    shaped = client.chat(model=CHAT_MODEL, messages=HELLO, format=schema)
    assert json.loads(shaped.message.content or "") == {"n": 1}


def test_num_predict_and_stop(client: ollama.Client) -> None:
    cut = client.chat(model=CHAT_MODEL, messages=HELLO, options={"num_predict": 2})
    assert cut.done_reason == "length"
    assert cut.eval_count == 2
    stopped = client.chat(model=CHAT_MODEL, messages=HELLO, options={"stop": ["said:"]})
    assert stopped.message.content == "Hello from local. You"


def test_images_accepted(client: ollama.Client) -> None:
    turn = [{"role": "user", "content": "what is this", "images": [b"\x89PNG fake bytes"]}]
    resp = client.chat(model=CHAT_MODEL, messages=turn)
    assert "I see 1 image(s)." in (resp.message.content or "")
    assert resp.prompt_eval_count == 3 + 3 + 85


def test_bad_image_rejected(fake: FakeProvider) -> None:
    body = {
        "model": CHAT_MODEL,
        "stream": False,
        "messages": [{"role": "user", "content": "x", "images": ["%%%not base64"]}],
    }
    resp = httpx.post(f"{fake.url}/api/chat", json=body, timeout=10)
    assert resp.status_code == 400
    assert "base64" in resp.json()["error"]


def test_embed(client: ollama.Client) -> None:
    resp = client.embed(model="nomic-embed-text", input=["first text", "second"])
    assert resp.model == "nomic-embed-text"
    assert [len(v) for v in resp.embeddings] == [8, 8]
    assert list(resp.embeddings[0]) == content.embedding("first text", 8)
    assert resp.embeddings[0] != resp.embeddings[1]
    assert resp.prompt_eval_count == 3
    single = client.embed(model="nomic-embed-text", input="first text")
    assert single.embeddings == [resp.embeddings[0]]


def test_unknown_model(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="mistral:7b", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'mistral:7b' not found"
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.chat(model="mistral:7b", messages=HELLO, stream=True))
    assert streamed.value.status_code == 404


def test_chat_streams_ndjson_by_default(fake: FakeProvider) -> None:
    body = {"model": CHAT_MODEL, "messages": HELLO}
    resp = httpx.post(f"{fake.url}/api/chat", json=body, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert len(lines) > 2
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["done_reason"] == "stop"
    assert lines[-1]["eval_count"] == len(lines) - 1


def test_cut_stream_raises(fake: FakeProvider, client: ollama.Client) -> None:
    fake.set_faults(cut_stream_after=2)
    with pytest.raises(httpx.RemoteProtocolError):
        list(client.chat(model=CHAT_MODEL, messages=HELLO, stream=True))


async def test_async_client() -> None:
    async with FakeProvider("local", Flavor.OLLAMA, MODELS) as fake:
        client = ollama.AsyncClient(host=fake.url, timeout=10)
        plain = await client.chat(model=CHAT_MODEL, messages=HELLO)
        pieces = [c.message.content or "" async for c in await client.chat(
            model=CHAT_MODEL, messages=HELLO, stream=True
        )]  # fmt: skip
    assert "".join(pieces) == plain.message.content
