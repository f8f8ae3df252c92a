"""The fake provider's OpenAI wire format, checked by the official openai SDK.

The same routes back the vLLM, LocalAI and Ollama (/v1) flavors, so every flavor is exercised.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor

MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("cloud", Flavor.OPENAI, [MODEL, "text-embedding-3-small"]) as f:
        yield f


@pytest.fixture
def client(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def threaded() -> Iterator[FakeProvider]:
    with FakeProvider("sync", Flavor.OPENAI, [MODEL]).running_in_thread() as f:
        yield f


async def test_plain_chat(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == "Hello from cloud. You said: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.completion_tokens == 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + 7


def test_sync_client_against_threaded_fake(threaded: FakeProvider) -> None:
    client = openai.OpenAI(base_url=threaded.base_url, api_key="sk", max_retries=0)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "Hello from sync. You said: x"
    with client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from sync. You said: x"


async def test_stream_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream me"}],
    )
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == "Hello from cloud. You said: stream me"
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == 7


async def test_stream_without_usage_sends_none(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "a"}]
    )
    assert all([c.usage is None async for c in stream])


async def test_tool_call_round_trip(client: openai.AsyncOpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Oslo?"}]
    r = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "example", "days": 1}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r2 = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content


async def test_streamed_tool_call(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        stream=True,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    )
    name, args, finish = "", "", None
    async for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                assert tc.index == 0
                name += (tc.function.name or "") if tc.function else ""
                args += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"city": "example", "days": 1}
    assert finish == "tool_calls"


async def test_json_modes(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=MODEL,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json please"}],
    )
    assert "reply" in json.loads(r.choices[0].message.content or "")
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
    }
    r = await client.chat.completions.create(
        model=MODEL,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        messages=[{"role": "user", "content": "json please"}],
    )
    assert json.loads(r.choices[0].message.content or "") == {"answer": "example", "score": 1.5}


async def test_max_tokens_truncates(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "long answer"}]
    )
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "Hello from"


async def test_images_are_accepted(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            }
        ],
    )
    assert "I see 1 image(s)" in (r.choices[0].message.content or "")


async def test_embeddings_float_and_base64(client: openai.AsyncOpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; explicit float is plain JSON.
    default = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert len(default.data) == 2
    assert len(default.data[0].embedding) == 8
    for x, y in zip(default.data[0].embedding, floats.data[0].embedding, strict=True):
        assert x == pytest.approx(y, abs=1e-6)
    assert default.data[0].embedding != default.data[1].embedding
    assert floats.usage.prompt_tokens == 2


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in client.models.list()]
    assert ids == [MODEL, "text-embedding-3-small"]


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.code == "model_not_found"


async def test_bad_request_is_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=[])


async def test_required_api_key(fake: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fake.set_faults(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError) as err:
        await client.models.list()
    assert err.value.code == "invalid_api_key"
    good = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0)
    assert [m.id async for m in good.models.list()]
    assert [s.authorized for s in fake.seen] == [False, True]


async def test_rate_limit_with_and_without_retry_after(
    fake: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    fake.set_faults(status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as err:
        await client.models.list()
    assert err.value.response.headers["retry-after"] == "7"
    fake.set_faults(status=429)
    with pytest.raises(openai.RateLimitError) as err:
        await client.models.list()
    assert "retry-after" not in err.value.response.headers


async def test_server_error_for_a_number_of_requests(
    fake: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    fake.set_faults(status=503, times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.models.list()
    assert [m.id async for m in client.models.list()]


async def test_hang_and_latency(fake: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fake.set_faults(hang=True)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.3).models.list()
    fake.set_faults(latency=0.2)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{fake.base_url}/models", timeout=0.05)
        assert (await http.get(f"{fake.base_url}/models", timeout=2)).status_code == 200


async def test_stream_cut_midway(fake: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fake.set_faults(cut_stream_after=3)
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "a b c d e f"}]
    )
    received: list[object] = []

    async def drain() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises((openai.APIError, httpx.HTTPError)):
        await drain()
    assert len(received) == 3


async def test_stream_paced(fake: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fake.set_faults(chunk_interval=0.05)
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "a b c"}]
    )
    arrivals = [time.monotonic() async for _ in stream]
    assert len(arrivals) >= 5
    assert arrivals[-1] - started >= 0.05 * (len(arrivals) - 1) * 0.9  # a pause per chunk


async def test_malformed_body(fake: FakeProvider) -> None:
    fake.set_faults(malformed=True)
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{fake.base_url}/models")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


async def test_admin_api_sets_faults_over_http(fake: FakeProvider) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as http:
        assert (await http.put("/_fake/faults", json={"status": 500})).status_code == 200
        assert (await http.get("/v1/models")).status_code == 500
        assert (await http.put("/_fake/faults", json={"status": 42})).status_code == 400
        assert (await http.post("/_fake/reset")).status_code == 200
        assert (await http.get("/v1/models")).status_code == 200
        seen = (await http.get("/_fake/requests")).json()["requests"]
        assert [s["path"] for s in seen] == ["/v1/models"]


@pytest.mark.parametrize("flavor", [Flavor.VLLM, Flavor.LOCALAI, Flavor.OLLAMA])
async def test_openai_compatible_flavors(flavor: Flavor) -> None:
    async with FakeProvider("local", flavor, ["llama"]) as fake:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        r = await client.chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == "Hello from local. You said: hi"
        assert [m.id async for m in client.models.list()] == ["llama"]


async def test_vllm_health_and_metrics() -> None:
    async with FakeProvider("gpu", Flavor.VLLM, ["llama"]) as fake:
        async with httpx.AsyncClient(base_url=fake.url) as http:
            assert (await http.get("/health")).status_code == 200
            await http.put("/_fake/vllm", json={"waiting": 4, "running": 2, "kv_cache_usage": 0.5})
            text = (await http.get("/metrics")).text
            models = (await http.get("/v1/models")).json()["data"]
    assert 'vllm:num_requests_waiting{engine="0",model_name="llama"} 4' in text
    assert 'vllm:num_requests_running{engine="0",model_name="llama"} 2' in text
    assert 'vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.5' in text
    assert models[0]["owned_by"] == "vllm"
    assert models[0]["max_model_len"] == 32768


async def test_vllm_error_shape() -> None:
    async with FakeProvider("gpu", Flavor.VLLM, ["llama"]) as fake:
        async with httpx.AsyncClient(base_url=fake.url) as http:
            r = await http.post("/v1/chat/completions", json={"model": "other", "messages": []})
    assert r.status_code == 404
    assert r.json()["object"] == "error"
    assert r.json()["code"] == 404


async def test_localai_readyz() -> None:
    async with FakeProvider("lai", Flavor.LOCALAI, ["gpt-4"]) as fake:
        async with httpx.AsyncClient(base_url=fake.url) as http:
            assert (await http.get("/readyz")).status_code == 200


async def test_azure_flavor_with_the_azure_client() -> None:
    async with FakeProvider("azure", Flavor.AZURE, ["my-deployment"]) as fake:
        fake.set_faults(api_key="az-key")
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=fake.url, api_key="az-key", api_version="2024-10-21", max_retries=0
        )
        r = await client.chat.completions.create(
            model="my-deployment", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == "Hello from azure. You said: hi"
        assert fake.seen[-1].path == "/openai/deployments/my-deployment/chat/completions"
        assert fake.seen[-1].authorized is True
        async with httpx.AsyncClient(base_url=fake.url) as http:
            missing = await http.get("/openai/models", headers={"api-key": "az-key"})
            listed = await http.get(
                "/openai/models?api-version=2024-10-21", headers={"api-key": "az-key"}
            )
        assert missing.status_code == 400
        assert [m["id"] for m in listed.json()["data"]] == ["my-deployment"]
