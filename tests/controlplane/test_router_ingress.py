"""The router's other client APIs, driven by the official SDKs: Anthropic Messages
(``POST /v1/messages``, the ``anthropic`` SDK) in front of a fake provider of every type, and
legacy text completions (``POST /v1/completions``, ``openai``'s ``client.completions``) in
front of the types that serve them.

One router process (manifests mode, a client key required) serves the module: the Anthropic
SDK sends that key in ``x-api-key``, the OpenAI SDK as a bearer token. Each test also checks
what the upstream got: its own path and model name, and for Anthropic providers the client's
Messages request as sent.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Faults, Flavor, SeenRequest
from tests.support.router import RouterProcess, policy, provider, running_fakes, secret

RUN = secrets.token_hex(6)
CLIENT_KEY = f"sbx-client-{RUN}"
SECRET_NAME = "provider-keys"
CAPS = ["chat", "completions", "streaming", "tools", "vision", "jsonMode", "jsonSchema"]
PROMPT = "hello router"
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
WEATHER_ARGS = {"city": "example", "days": 1}  # what the fake model fills in for that schema
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@dataclass(frozen=True)
class Kind:
    id: str
    ptype: str
    flavor: Flavor
    upstream: str
    chat_path: str
    completions_path: str | None  # None: the type serves no legacy completions

    @property
    def alias(self) -> str:
        return f"{self.id}-model"

    @property
    def native(self) -> bool:
        return self.flavor == Flavor.ANTHROPIC

    def reply(self, prompt: str = PROMPT) -> str:
        return f"Hello from {self.id}. You said: {prompt}"


KINDS = [
    Kind(
        "openai", "OpenAI", Flavor.OPENAI, "gpt-4o-mini", "/v1/chat/completions", "/v1/completions"
    ),
    Kind(
        "compat",
        "OpenAICompatible",
        Flavor.OPENAI,
        "qwen2.5-7b-instruct",
        "/v1/chat/completions",
        "/v1/completions",
    ),
    Kind(
        "azure",
        "AzureOpenAI",
        Flavor.AZURE,
        "gpt-4o-prod",
        "/openai/deployments/gpt-4o-prod/chat/completions",
        None,
    ),
    Kind(
        "vllm",
        "VLLM",
        Flavor.VLLM,
        "meta-llama/Llama-3.1-8B-Instruct",
        "/v1/chat/completions",
        "/v1/completions",
    ),
    Kind(
        "localai",
        "LocalAI",
        Flavor.LOCALAI,
        "hermes-2-pro",
        "/v1/chat/completions",
        "/v1/completions",
    ),
    Kind("ollama", "Ollama", Flavor.OLLAMA, "llama3.2:3b", "/api/chat", "/v1/completions"),
    Kind("anthropic", "Anthropic", Flavor.ANTHROPIC, "claude-haiku-4-5", "/v1/messages", None),
]
COMPLETERS = [k for k in KINDS if k.completions_path]
every_kind = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
every_completer = pytest.mark.parametrize("kind", COMPLETERS, ids=lambda k: k.id)


def _key(kind: Kind) -> str:
    return f"sbx-{kind.id}-key-{RUN}"


def _provider_doc(kind: Kind, fake: FakeProvider) -> dict[str, Any]:
    models = [{"name": kind.upstream, "aliases": [kind.alias], "capabilities": CAPS}]
    extra: dict[str, Any] = {}
    if kind.flavor == Flavor.AZURE:
        extra["azure"] = {"apiVersion": "2024-10-21"}
    url = fake.url if kind.flavor in (Flavor.AZURE, Flavor.ANTHROPIC) else fake.base_url
    return provider(kind.id, kind.ptype, url, models=models, secret=(SECRET_NAME, kind.id), **extra)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    made = {
        k.id: FakeProvider(k.id, k.flavor, [k.upstream], faults=Faults(api_key=_key(k)))
        for k in KINDS
    }
    # A second OpenAI-style fake behind the "failover" policy, after one that fails.
    made["broken"] = FakeProvider("broken", Flavor.OPENAI, ["gpt-4o-mini"])
    with running_fakes(*made.values()):
        yield made


@pytest.fixture(scope="module")
def router(
    fakes: dict[str, FakeProvider], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    base = tmp_path_factory.mktemp("router-ingress")
    keys_file = base / "client-keys"
    keys_file.write_text(CLIENT_KEY + "\n")
    docs = [
        secret(SECRET_NAME, {k.id: _key(k) for k in KINDS}),
        *[_provider_doc(k, fakes[k.id]) for k in KINDS],
        provider("broken", "OpenAICompatible", fakes["broken"].base_url, models=["gpt-4o-mini"]),
        policy(
            "failover",
            ["failover-model"],
            [
                {"name": "broken", "model": "gpt-4o-mini", "priority": 1},
                {"name": "anthropic", "model": "claude-haiku-4-5", "priority": 2},
            ],
            failover={"backoff": {"base": "10ms", "max": "50ms"}},
        ),
    ]
    running = RouterProcess(
        base / "manifests", base / "router.log", ("--api-keys-file", str(keys_file))
    )
    running.write(docs)
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def claude(router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=router.url, api_key=CLIENT_KEY, max_retries=0, timeout=15
    ) as c:
        yield c


@pytest.fixture(scope="module")
def client(router: RouterProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=15
    ) as c:
        yield c


def _upstream(fake: FakeProvider, kind: Kind, path: str) -> SeenRequest:
    seen = fake.seen[-1]
    assert seen.path == path
    assert seen.model == kind.upstream
    assert seen.authorized is not False
    assert seen.body is not None
    return seen


def _user(text: str = PROMPT) -> list[anthropic.types.MessageParam]:
    return [{"role": "user", "content": text}]


# -- Messages ------------------------------------------------------------------------------


@every_kind
def test_messages_plain(
    claude: anthropic.Anthropic, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    raw = claude.messages.with_raw_response.create(
        model=kind.alias, max_tokens=200, system="Be brief.", messages=_user()
    )
    assert raw.headers["x-signalbox-provider"] == kind.id
    m = raw.parse()
    assert m.type == "message"
    assert m.role == "assistant"
    assert [b.type for b in m.content] == ["text"]
    block = m.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text == kind.reply()
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == len(kind.reply().split())
    assert m.usage.input_tokens > 0
    seen = _upstream(fakes[kind.id], kind, kind.chat_path)
    assert seen.body is not None
    if kind.native:  # passed through: the client's own request, model name aside
        assert seen.body["system"] == "Be brief."
        assert seen.body["max_tokens"] == 200
    elif kind.flavor == Flavor.OLLAMA:
        assert seen.body["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert seen.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert seen.body["max_tokens"] == 200


@every_kind
def test_messages_multi_turn_image_and_stop(
    claude: anthropic.Anthropic, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    m = claude.messages.create(
        model=kind.alias,
        max_tokens=50,
        stop_sequences=["said:"],
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                    {"type": "text", "text": "what is this"},
                ],
            },
        ],
    )
    block = m.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    # The fake echoes the last user text, sees the image and stops before the stop sequence.
    assert block.text == f"Hello from {kind.id}. I see 1 image(s). You"
    assert m.stop_reason == ("stop_sequence" if kind.native else "end_turn")
    seen = _upstream(fakes[kind.id], kind, kind.chat_path)
    assert seen.body is not None
    assert len([x for x in seen.body["messages"] if x["role"] != "system"]) == 3


@every_kind
def test_messages_max_tokens(claude: anthropic.Anthropic, kind: Kind) -> None:
    m = claude.messages.create(model=kind.alias, max_tokens=2, messages=_user())
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 2


@every_kind
def test_messages_stream_events(claude: anthropic.Anthropic, kind: Kind) -> None:
    with claude.messages.stream(model=kind.alias, max_tokens=200, messages=_user()) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert "content_block_start" in kinds
    assert "content_block_delta" in kinds
    assert kinds.count("content_block_stop") == 1
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"] or kinds[-2:] == [
        "message_delta",
        "message_stop",
    ]
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 2  # really streamed
    block = final.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text == kind.reply()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(kind.reply().split())


@every_kind
def test_messages_stream_raw_sequence(router: RouterProcess, kind: Kind) -> None:
    """The SSE names on the wire, ping included, with data whose type matches its event."""
    body = {"model": kind.alias, "max_tokens": 100, "stream": True, "messages": _user()}
    with httpx.stream(
        "POST",
        router.url + "/v1/messages",
        json=body,
        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        timeout=15,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    names, payloads = [], []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        names.append(lines["event"])
        payloads.append(json.loads(lines["data"]))
    assert [p["type"] for p in payloads] == names
    assert names[0] == "message_start"
    assert "ping" in names
    assert names[-2:] == ["message_delta", "message_stop"]
    assert payloads[-2]["usage"]["output_tokens"] == len(kind.reply().split())


@every_kind
def test_messages_tool_round_trip(
    claude: anthropic.Anthropic, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    first = claude.messages.create(
        model=kind.alias,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=_user("weather please"),
    )
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if isinstance(b, anthropic.types.ToolUseBlock)]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == WEATHER_ARGS
    sent = _upstream(fakes[kind.id], kind, kind.chat_path).body
    assert sent is not None
    if kind.native:
        assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    elif kind.flavor != Flavor.OLLAMA:
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    second = claude.messages.create(
        model=kind.alias,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            *_user("weather please"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "21 degrees"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    block = second.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text == kind.reply("weather please")
    last = _upstream(fakes[kind.id], kind, kind.chat_path).body
    assert last is not None
    if kind.native:
        assert last["messages"][-1]["content"][0]["tool_use_id"] == uses[0].id
    else:
        assert last["messages"][-1]["role"] == "tool"


@every_kind
def test_messages_tool_stream(claude: anthropic.Anthropic, kind: Kind) -> None:
    with claude.messages.stream(
        model=kind.alias,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=_user("weather please"),
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if isinstance(b, anthropic.types.ToolUseBlock)]
    assert [u.name for u in uses] == ["get_weather"]
    assert uses[0].input == WEATHER_ARGS
    assert uses[0].id


def test_messages_key_required(router: RouterProcess) -> None:
    with (
        anthropic.Anthropic(
            base_url=router.url, api_key="wrong-key", max_retries=0, timeout=15
        ) as bad,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        bad.messages.create(model="openai-model", max_tokens=10, messages=_user())
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"


def test_messages_bearer_key_accepted(router: RouterProcess) -> None:
    resp = httpx.post(
        router.url + "/v1/messages",
        json={"model": "openai-model", "max_tokens": 20, "messages": _user()},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "message"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "openai-model", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "openai-model", "max_tokens": 5, "messages": []}, "messages"),
        (
            {
                "model": "openai-model",
                "max_tokens": 5,
                "messages": [{"role": "tool", "content": "x"}],
            },
            "messages.0.role",
        ),
    ],
)
def test_messages_bad_request(
    claude: anthropic.Anthropic, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.post("/v1/messages", cast_to=httpx.Response, body=body)
    error = caught.value.body
    assert isinstance(error, dict)
    assert set(error) == {"type", "error"}
    assert error["error"]["type"] == "invalid_request_error"
    assert param in error["error"]["message"]


def test_messages_unknown_model(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=_user())
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["error"]["type"] == "not_found_error"


def test_messages_fail_over_to_anthropic(
    claude: anthropic.Anthropic, fakes: dict[str, FakeProvider]
) -> None:
    fakes["broken"].set_faults(status=503, times=1)
    try:
        raw = claude.messages.with_raw_response.create(
            model="failover-model", max_tokens=100, messages=_user()
        )
    finally:
        fakes["broken"].clear_faults()
    assert raw.headers["x-signalbox-provider"] == "anthropic"
    assert raw.headers["x-signalbox-attempts"] == "2"
    block = raw.parse().content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text == BY_ID["anthropic"].reply()
    assert fakes["broken"].seen[-1].path == "/v1/chat/completions"


def test_messages_stream_cut_ends_with_error_event(
    router: RouterProcess, fakes: dict[str, FakeProvider]
) -> None:
    fakes["openai"].set_faults(api_key=_key(BY_ID["openai"]), cut_stream_after=4)
    try:
        with httpx.stream(
            "POST",
            router.url + "/v1/messages",
            json={"model": "openai-model", "max_tokens": 100, "stream": True, "messages": _user()},
            headers={"x-api-key": CLIENT_KEY},
            timeout=15,
        ) as resp:
            text = resp.read().decode()
    finally:
        fakes["openai"].set_faults(api_key=_key(BY_ID["openai"]))
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    payload = json.loads(last.split("data: ", 1)[1])
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "api_error"
    assert "message_stop" not in text


def _usage_row(router: RouterProcess, model: str) -> dict[str, Any]:
    resp = httpx.get(router.url + "/v1/usage", headers={"x-api-key": CLIENT_KEY}, timeout=15)
    assert resp.status_code == 200
    rows = [r for r in resp.json()["data"] if r["model"] == model]
    return rows[0] if rows else {"request_count": 0, "total_tokens": 0}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_messages_metered(router: RouterProcess, claude: anthropic.Anthropic, stream: bool) -> None:
    before = _usage_row(router, "vllm-model")
    m: anthropic.types.Message
    if stream:
        with claude.messages.stream(model="vllm-model", max_tokens=100, messages=_user()) as s:
            m = s.get_final_message()
    else:
        m = claude.messages.create(model="vllm-model", max_tokens=100, messages=_user())
    after = _usage_row(router, "vllm-model")
    assert after["request_count"] == before["request_count"] + 1
    spent = m.usage.input_tokens + m.usage.output_tokens
    assert after["total_tokens"] - before["total_tokens"] == spent


# -- legacy completions ----------------------------------------------------------------------


@every_completer
def test_completions_plain(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    raw = client.completions.with_raw_response.create(
        model=kind.alias, prompt=PROMPT, max_tokens=50
    )
    assert raw.headers["x-signalbox-provider"] == kind.id
    c = raw.parse()
    assert c.object == "text_completion"
    assert c.choices[0].text == kind.reply()
    assert c.choices[0].finish_reason == "stop"
    assert c.usage is not None
    assert c.usage.completion_tokens == len(kind.reply().split())
    assert kind.completions_path is not None
    seen = _upstream(fakes[kind.id], kind, kind.completions_path)
    assert seen.body is not None
    assert seen.body["prompt"] == PROMPT


@every_completer
def test_completions_stream(client: openai.OpenAI, kind: Kind) -> None:
    chunks = list(client.completions.create(model=kind.alias, prompt=PROMPT, stream=True))
    assert len(chunks) > 2
    assert "".join(c.choices[0].text for c in chunks if c.choices) == kind.reply()
    assert all(c.usage is None for c in chunks), "usage was not asked for"
    with_usage = list(
        client.completions.create(
            model=kind.alias,
            prompt=PROMPT,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == len(kind.reply().split())


@pytest.mark.parametrize("kind_id", ["anthropic", "azure"])
def test_completions_refused_where_not_served(client: openai.OpenAI, kind_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=BY_ID[kind_id].alias, prompt=PROMPT)
    assert "completions" in str(caught.value)


def test_completions_bad_prompt(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="openai-model", prompt=[])
    assert caught.value.body is not None
    assert "prompt" in str(caught.value.body)


BY_ID = {k.id: k for k in KINDS}


@every_kind
async def test_messages_async_stream_with_tools(router: RouterProcess, kind: Kind) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=router.url, api_key=CLIENT_KEY, max_retries=0, timeout=15
    ) as aclaude:
        async with aclaude.messages.stream(
            model=kind.alias,
            max_tokens=200,
            tools=[WEATHER_TOOL],
            messages=_user("weather please"),
        ) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if isinstance(b, anthropic.types.ToolUseBlock)]
    assert [(u.name, u.input) for u in uses] == [("get_weather", WEATHER_ARGS)]
