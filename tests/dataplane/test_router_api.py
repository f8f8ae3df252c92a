"""The router's OpenAI API, driven by the official openai SDK (sync and async clients), in front of
a fake provider of every type: OpenAI, OpenAI-compatible, Azure OpenAI, vLLM, LocalAI, Ollama
(translated to /api/chat) and Anthropic (translated to /v1/messages).

One router process (manifests mode, debug logging) serves the whole module; every type gets
client-facing aliases (``<type>-chat``, ``<type>-embed``) so each test also checks that the
upstream got its own model name, its own auth header and the right path.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from signalbox_fake import FakeProvider, Faults, Flavor, SeenRequest
from signalbox_fake import content as fake_content
from tests.support.router import (
    Doc,
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
    secret,
)

RUN = secrets.token_hex(6)
SECRET_NAME = "provider-keys"
BAD_KEY = f"sbx-badkey-{RUN}"
CHAT_CAPS = ["chat", "streaming", "tools", "jsonMode", "jsonSchema"]
AUTH_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
PROMPT = "hello router"
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
WEATHER_ARGS = {"city": "example", "days": 1}  # what the fake model fills in for that schema
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "forecast",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "rain": {"type": "boolean"}},
        },
    },
}


@dataclass(frozen=True)
class Kind:
    """One provider type behind the router, played by one fake provider of the same name."""

    id: str
    ptype: str  # LLMProvider spec.type
    flavor: Flavor
    upstream: str  # the chat model as the upstream knows it
    embed: str | None  # an embedding model it serves, if the type serves embeddings
    chat_path: str  # where the router must send a chat request
    auth_header: str | None  # the header the key must travel in; None: no auth configured

    @property
    def alias(self) -> str:
        return f"{self.id}-chat"

    @property
    def embed_alias(self) -> str:
        return f"{self.id}-embed"

    @property
    def key(self) -> str | None:
        return f"sbx-{self.id}-key-{RUN}" if self.auth_header else None

    @property
    def wire(self) -> str:
        return {Flavor.ANTHROPIC: "anthropic", Flavor.OLLAMA: "ollama"}.get(self.flavor, "openai")

    def reply(self, prompt: str = PROMPT) -> str:
        return f"Hello from {self.id}. You said: {prompt}"


KINDS = [
    Kind(
        "openai",
        "OpenAI",
        Flavor.OPENAI,
        "gpt-4o-mini",
        "text-embedding-3-small",
        "/v1/chat/completions",
        "authorization",
    ),
    Kind(
        "compat",
        "OpenAICompatible",
        Flavor.OPENAI,
        "qwen2.5-7b-instruct",
        "bge-small-en",
        "/v1/chat/completions",
        "authorization",
    ),
    Kind(
        "azure",
        "AzureOpenAI",
        Flavor.AZURE,
        "gpt-4o-prod",
        "embed-prod",
        "/openai/deployments/gpt-4o-prod/chat/completions",
        "api-key",
    ),
    Kind(
        "vllm",
        "VLLM",
        Flavor.VLLM,
        "meta-llama/Llama-3.1-8B-Instruct",
        "BAAI/bge-m3",
        "/v1/chat/completions",
        "authorization",
    ),
    Kind(
        "localai",
        "LocalAI",
        Flavor.LOCALAI,
        "hermes-2-pro",
        "all-minilm",
        "/v1/chat/completions",
        None,
    ),
    Kind("ollama", "Ollama", Flavor.OLLAMA, "llama3.2:3b", "nomic-embed-text", "/api/chat", None),
    Kind(
        "anthropic",
        "Anthropic",
        Flavor.ANTHROPIC,
        "claude-haiku-4-5",
        None,
        "/v1/messages",
        "x-api-key",
    ),
]
EMBEDDERS = [k for k in KINDS if k.embed]
BY_ID = {k.id: k for k in KINDS}
every_kind = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
every_embedder = pytest.mark.parametrize("kind", EMBEDDERS, ids=lambda k: k.id)


def _provider_doc(kind: Kind, fake: FakeProvider) -> Doc:
    models: list[dict[str, Any]] = [
        {"name": kind.upstream, "aliases": [kind.alias], "capabilities": CHAT_CAPS}
    ]
    if kind.embed:
        models.append(
            {"name": kind.embed, "aliases": [kind.embed_alias], "capabilities": ["embeddings"]}
        )
    if kind.id == "openai":
        models[0]["cost"] = {"inputPerMTok": "2.00", "outputPerMTok": "8.00"}
    extra: dict[str, Any] = {}
    if kind.flavor == Flavor.AZURE:
        extra["azure"] = {"apiVersion": "2024-10-21"}
    url = fake.url if kind.flavor in (Flavor.AZURE, Flavor.ANTHROPIC) else fake.base_url
    return provider(
        kind.id,
        kind.ptype,
        url,
        models=models,
        secret=(SECRET_NAME, kind.id) if kind.key else None,
        **extra,
    )


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    made = {
        k.id: FakeProvider(
            k.id,
            k.flavor,
            [k.upstream, *([k.embed] if k.embed else [])],
            faults=Faults(api_key=k.key),
        )
        for k in KINDS
    }
    with running_fakes(*made.values()):
        yield made


@pytest.fixture(scope="module")
def router(
    fakes: dict[str, FakeProvider], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    keys = {k.id: k.key for k in KINDS if k.key}
    docs = [
        secret(SECRET_NAME, {**keys, "badkey": BAD_KEY}),
        *[_provider_doc(k, fakes[k.id]) for k in KINDS],
        # The OpenAI fake again, with a key it refuses, reachable only through a policy.
        provider(
            "openai-badkey", "OpenAI", fakes["openai"].base_url, secret=(SECRET_NAME, "badkey")
        ),
        policy("badkey", ["badkey-chat"], [{"name": "openai-badkey", "model": "gpt-4o-mini"}]),
        policy("house", ["house-*"], [{"name": "compat", "model": "qwen2.5-7b-instruct"}]),
        policy(
            "claude-embed", ["claude-embed"], [{"name": "anthropic", "model": "claude-haiku-4-5"}]
        ),
    ]
    folder = tmp_path_factory.mktemp("router-api") / "manifests"
    with running_router(folder, docs, "--log-level", "debug") as running:
        yield running


@pytest.fixture(scope="module")
def client(router: RouterProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=router.base_url, api_key="any-client-key", max_retries=0, timeout=15
    ) as c:
        yield c


@pytest.fixture
async def aclient(router: RouterProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=router.base_url, api_key="any-client-key", max_retries=0, timeout=15
    ) as c:
        yield c


def _user(text: str = PROMPT) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _check_headers(headers: Any, provider_name: str, model: str) -> None:
    assert headers["x-signalbox-provider"] == provider_name
    assert headers["x-signalbox-model"] == model
    assert headers["x-signalbox-attempts"] == "1"


def _upstream(fake: FakeProvider, kind: Kind, path: str | None = None) -> SeenRequest:
    """The fake's last request, checked for path, model name and auth header."""
    seen = fake.seen[-1]
    assert seen.path == (path or kind.chat_path)
    if path is None:
        assert seen.model == kind.upstream
    if kind.auth_header is not None:
        assert kind.auth_header in seen.header_names
        if seen.path.startswith(("/v1/", "/openai/")):
            assert seen.authorized is True  # the fake compared the value to the key it wants
    else:
        assert seen.authorized is None
    assert not (AUTH_HEADERS - {kind.auth_header or ""}) & set(seen.header_names)
    if kind.flavor == Flavor.ANTHROPIC:
        assert "anthropic-version" in seen.header_names
    return seen


def _last_message(body: dict[str, Any] | None) -> dict[str, Any]:
    assert body is not None
    last: dict[str, Any] = body["messages"][-1]
    return last


def _tool_names(kind: Kind, body: dict[str, Any] | None) -> list[str]:
    assert body is not None
    if kind.wire == "anthropic":
        return [t["name"] for t in body["tools"]]
    return [t["function"]["name"] for t in body["tools"]]


def _check_tool_result_sent(kind: Kind, body: dict[str, Any] | None, call_id: str) -> None:
    last = _last_message(body)
    if kind.wire == "anthropic":
        assert last["role"] == "user"
        assert last["content"][0]["type"] == "tool_result"
        assert last["content"][0]["tool_use_id"] == call_id
    else:
        assert last["role"] == "tool"
        if kind.wire == "openai":
            assert last["tool_call_id"] == call_id


def _check_json_request(kind: Kind, body: dict[str, Any] | None, fmt: dict[str, Any]) -> None:
    """The upstream got the client's response_format in its own dialect."""
    assert body is not None
    schema = fmt.get("json_schema", {}).get("schema")
    if kind.wire == "anthropic":
        assert "JSON" in body["system"]  # no JSON mode there: an instruction instead
        if schema is not None:
            assert '"rain"' in body["system"]
    elif kind.wire == "ollama":
        assert body["format"] == (schema if schema is not None else "json")
    else:
        assert body["response_format"] == fmt


def _expected_json(kind: Kind, fmt: dict[str, Any], prompt: str) -> Any:
    if fmt["type"] == "json_schema":
        return {"city": "example", "rain": True}
    return {"reply": kind.reply(prompt)}


def _tool_turns(call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 21}'},
    ]


# -- the synchronous client -----------------------------------------------------------------


@every_kind
def test_chat(client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind) -> None:
    raw = client.chat.completions.with_raw_response.create(model=kind.alias, messages=_user())
    _check_headers(raw.headers, kind.id, kind.upstream)
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == kind.reply()
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.completion_tokens == len(kind.reply().split())
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    seen = _upstream(fakes[kind.id], kind)
    assert seen.body is not None
    assert not seen.body.get("stream")


@every_kind
def test_stream_text_equals_plain(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    plain = client.chat.completions.create(model=kind.alias, messages=_user())
    raw = client.chat.completions.with_raw_response.create(
        model=kind.alias, messages=_user(), stream=True
    )
    _check_headers(raw.headers, kind.id, kind.upstream)
    assert raw.headers["content-type"].startswith("text/event-stream")
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert len(chunks) > 2  # really streamed, not one blob
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content == kind.reply()
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None and c.choices for c in chunks), "usage was not asked for"
    assert chunks[-1].choices[0].finish_reason == "stop"
    body = _upstream(fakes[kind.id], kind).body
    assert body is not None
    assert body["stream"] is True
    if kind.wire == "openai":  # asked for metering, then kept from the client
        assert body["stream_options"] == {"include_usage": True}


@every_kind
def test_stream_usage_only_when_asked(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    plain = client.chat.completions.create(model=kind.alias, messages=_user())
    chunks = list(
        client.chat.completions.create(
            model=kind.alias,
            messages=_user(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert plain.usage is not None
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == kind.reply()
    _upstream(fakes[kind.id], kind)


@every_kind
def test_tool_call_round_trip(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    messages = _user("What is the weather in Paris?")
    first = client.chat.completions.create(
        model=kind.alias, messages=messages, tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert call.id
    assert _tool_names(kind, _upstream(fakes[kind.id], kind).body) == ["get_weather"]

    messages += _tool_turns(call.id, call.function.name, call.function.arguments)
    second = client.chat.completions.create(
        model=kind.alias, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls in (None, [])
    assert second.choices[0].message.content == kind.reply("What is the weather in Paris?")
    _check_tool_result_sent(kind, _upstream(fakes[kind.id], kind).body, call.id)


@every_kind
def test_streamed_tool_call(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    stream = client.chat.completions.create(
        model=kind.alias,
        messages=_user("What is the weather in Paris?"),
        tools=[WEATHER_TOOL],
        stream=True,
    )
    names, arguments, ids, finish = [], "", [], None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.id:
                ids.append(delta.id)
            if delta.function and delta.function.name:
                names.append(delta.function.name)
            if delta.function and delta.function.arguments:
                arguments += delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert len(ids) == 1
    assert json.loads(arguments) == WEATHER_ARGS
    assert finish == "tool_calls"
    _upstream(fakes[kind.id], kind)


@every_kind
@pytest.mark.parametrize(
    "fmt", [{"type": "json_object"}, SCHEMA_FORMAT], ids=["json_object", "json_schema"]
)
def test_json_mode(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind, fmt: dict[str, Any]
) -> None:
    prompt = "answer in json"
    r = client.chat.completions.create(
        model=kind.alias, messages=_user(prompt), response_format=fmt
    )
    content = r.choices[0].message.content
    assert content is not None
    body = _upstream(fakes[kind.id], kind).body
    _check_json_request(kind, body, fmt)
    if kind.wire != "anthropic":  # the Anthropic fake does not read system instructions
        assert json.loads(content) == _expected_json(kind, fmt, prompt)


@every_embedder
def test_embeddings(client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind) -> None:
    assert kind.embed is not None
    raw = client.embeddings.with_raw_response.create(
        model=kind.embed_alias, input=["alpha", "beta gamma"]
    )
    _check_headers(raw.headers, kind.id, kind.embed)
    r = raw.parse()
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding == pytest.approx(fake_content.embedding("alpha", 8), abs=1e-6)
    assert r.data[1].embedding == pytest.approx(fake_content.embedding("beta gamma", 8), abs=1e-6)
    assert r.usage.prompt_tokens == 3
    path = (
        f"/openai/deployments/{kind.embed}/embeddings"
        if kind.flavor == Flavor.AZURE
        else "/v1/embeddings"
    )
    seen = _upstream(fakes[kind.id], kind, path)
    assert seen.model == kind.embed


def test_embeddings_from_a_chat_only_provider_are_refused(
    client: openai.OpenAI, fakes: dict[str, FakeProvider]
) -> None:
    before = len(fakes["anthropic"].seen)
    with pytest.raises(openai.BadRequestError) as err:  # the request's fault: not retried
        client.embeddings.create(model="claude-embed", input="alpha")
    assert err.value.code == "unsupported_request"
    assert "embeddings" in err.value.message
    assert len(fakes["anthropic"].seen) == before


def test_completions_for_a_model_that_cannot_take_them_are_the_clients_400(
    client: openai.OpenAI, fakes: dict[str, FakeProvider]
) -> None:
    before = len(fakes["anthropic"].seen)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="claude-embed", prompt="alpha")
    assert err.value.code == "unsupported_request"
    assert "completions" in err.value.message
    assert len(fakes["anthropic"].seen) == before


def test_models_list(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = [m.id for m in models]
    assert len(ids) == len(set(ids))
    for kind in KINDS:
        assert {kind.alias, kind.upstream} <= set(ids)
        if kind.embed:
            assert {kind.embed_alias, kind.embed} <= set(ids)
    assert {"badkey-chat", "claude-embed"} <= set(ids)
    assert not any("*" in i for i in ids), "glob policies are not model names"
    assert all(m.object == "model" and m.owned_by == "signalbox" for m in models)


def test_policy_glob_sends_the_ref_model(
    client: openai.OpenAI, fakes: dict[str, FakeProvider]
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="house-special", messages=_user())
    _check_headers(raw.headers, "compat", "qwen2.5-7b-instruct")
    assert raw.parse().choices[0].message.content == BY_ID["compat"].reply()
    _upstream(fakes["compat"], BY_ID["compat"])


def test_usage_is_metered_with_declared_prices(
    client: openai.OpenAI, router: RouterProcess
) -> None:
    client.chat.completions.create(model="openai-chat", messages=_user())
    rows = router.get("/v1/usage").json()["data"]
    row = next(r for r in rows if r["model"] == "openai-chat" and r["provider"] == "openai")
    assert row["request_count"] >= 1
    assert row["total_tokens"] > 0
    assert float(row["total_cost"]) > 0
    assert (
        router.metric(
            "signalbox_router_requests_total", model="openai-chat", provider="openai", code="200"
        )
        >= 1
    )


# -- the asynchronous client ----------------------------------------------------------------


@every_kind
async def test_async_chat(
    aclient: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    raw = await aclient.chat.completions.with_raw_response.create(
        model=kind.alias, messages=_user()
    )
    _check_headers(raw.headers, kind.id, kind.upstream)
    r = raw.parse()
    assert r.choices[0].message.content == kind.reply()
    assert r.choices[0].finish_reason == "stop"
    _upstream(fakes[kind.id], kind)


@every_kind
async def test_async_stream(
    aclient: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    plain = await aclient.chat.completions.create(model=kind.alias, messages=_user())
    raw = await aclient.chat.completions.with_raw_response.create(
        model=kind.alias, messages=_user(), stream=True
    )
    _check_headers(raw.headers, kind.id, kind.upstream)
    parsed = raw.parse()
    assert isinstance(parsed, openai.AsyncStream)
    chunks = [c async for c in parsed]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content == kind.reply()
    assert all(c.usage is None for c in chunks)

    stream = await aclient.chat.completions.create(
        model=kind.alias, messages=_user(), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert [c.usage is not None for c in chunks].count(True) == 1
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []
    assert plain.usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    _upstream(fakes[kind.id], kind)


@every_kind
async def test_async_tool_call_round_trip(
    aclient: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    messages = _user("Weather in Oslo?")
    first = await aclient.chat.completions.create(
        model=kind.alias, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls is not None
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    messages += _tool_turns(call.id, call.function.name, call.function.arguments)
    second = await aclient.chat.completions.create(
        model=kind.alias, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == kind.reply("Weather in Oslo?")
    _check_tool_result_sent(kind, _upstream(fakes[kind.id], kind).body, call.id)


@every_kind
async def test_async_json_mode(
    aclient: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    fmt = {"type": "json_object"}
    r = await aclient.chat.completions.create(
        model=kind.alias, messages=_user("json please"), response_format=fmt
    )
    _check_json_request(kind, _upstream(fakes[kind.id], kind).body, fmt)
    content = r.choices[0].message.content
    assert content is not None
    if kind.wire != "anthropic":
        assert json.loads(content) == _expected_json(kind, fmt, "json please")


@every_embedder
async def test_async_embeddings(
    aclient: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    raw = await aclient.embeddings.with_raw_response.create(
        model=kind.embed_alias, input="delta", encoding_format="float"
    )
    _check_headers(raw.headers, kind.id, kind.embed or "")
    r = raw.parse()
    assert len(r.data) == 1
    assert r.data[0].embedding == pytest.approx(fake_content.embedding("delta", 8), abs=1e-6)
    assert fakes[kind.id].seen[-1].model == kind.embed


async def test_async_models_list(aclient: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in aclient.models.list()]
    assert {k.alias for k in KINDS} <= set(ids)
    assert "house-*" not in ids


# -- keys --------------------------------------------------------------------------------------


def test_secret_values_never_leak(
    client: openai.OpenAI, router: RouterProcess, fakes: dict[str, FakeProvider]
) -> None:
    # Traffic that uses every key: answers, streams, and an upstream that refuses its key.
    for kind in KINDS:
        client.chat.completions.create(model=kind.alias, messages=_user())
        list(client.chat.completions.create(model=kind.alias, messages=_user(), stream=True))
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="badkey-chat", messages=_user())
    assert err.value.status_code == 502
    assert err.value.code == "AuthFailed"
    refused = fakes["openai"].seen[-1]
    assert refused.authorized is False  # the bad key really reached the upstream
    assert "authorization" in refused.header_names

    texts = {
        "error body": err.value.response.text,
        "log": router.log(),
        "metrics": router.metrics(),
        "usage": router.get("/v1/usage").text,
        "explain": router.get("/v1/explain", params={"model": "badkey-chat"}).text,
        "readyz": router.get("/readyz").text,
    }
    assert "Uvicorn running on" in texts["log"]  # the log that is checked is the real one
    keys = [BAD_KEY, *(k.key for k in KINDS if k.key)]
    for where, text in texts.items():
        for key in keys:
            assert key not in text, f"an API key leaked into the {where}"
            assert key[-12:] not in text, f"part of an API key leaked into the {where}"
