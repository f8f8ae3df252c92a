"""The router's OpenAI Responses API (``POST /v1/responses``, the stateless subset), driven by
the official ``openai`` SDK's ``client.responses`` in front of a fake provider of every type:
passed through to OpenAI and Azure OpenAI (which serve it themselves), translated to chat for
the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall

from signalbox_fake import FakeProvider, Faults, Flavor, SeenRequest
from tests.controlplane.test_router_ingress import (
    CLIENT_KEY,
    KINDS,
    PROMPT,
    SECRET_NAME,
    WEATHER_ARGS,
    Kind,
    _key,
    _provider_doc,
)
from tests.support.router import RouterProcess, running_fakes, secret

NATIVE = {"openai": "/v1/responses", "azure": "/openai/v1/responses"}
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
SCHEMA = {
    "format": {
        "type": "json_schema",
        "name": "forecast",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "rain": {"type": "boolean"}},
        },
    }
}
every_kind = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    made = {
        k.id: FakeProvider(k.id, k.flavor, [k.upstream], faults=Faults(api_key=_key(k)))
        for k in KINDS
    }
    with running_fakes(*made.values()):
        yield made


@pytest.fixture(scope="module")
def client(
    fakes: dict[str, FakeProvider], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    base = tmp_path_factory.mktemp("router-responses")
    keys_file = base / "client-keys"
    keys_file.write_text(CLIENT_KEY + "\n")
    docs = [
        secret(SECRET_NAME, {k.id: _key(k) for k in KINDS}),
        *[_provider_doc(k, fakes[k.id]) for k in KINDS],
    ]
    router = RouterProcess(
        base / "manifests", base / "router.log", ("--api-keys-file", str(keys_file))
    )
    router.write(docs)
    try:
        router.start()
        with openai.OpenAI(
            base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=15
        ) as c:
            yield c
    finally:
        router.stop()


def _upstream(fake: FakeProvider, kind: Kind) -> dict[str, Any]:
    seen: SeenRequest = fake.seen[-1]
    assert seen.path == NATIVE.get(kind.id, kind.chat_path)
    assert seen.model == kind.upstream
    assert seen.body is not None
    return seen.body


@every_kind
def test_text(client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind) -> None:
    raw = client.responses.with_raw_response.create(
        model=kind.alias, input=PROMPT, instructions="Be brief."
    )
    assert raw.headers["x-signalbox-provider"] == kind.id
    r = raw.parse()
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == kind.reply()
    assert r.usage is not None
    assert r.usage.output_tokens == len(kind.reply().split())
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    sent = _upstream(fakes[kind.id], kind)
    if kind.id in NATIVE:  # passed through as the client sent it
        assert sent["instructions"] == "Be brief."
        assert sent["input"] == PROMPT
    elif kind.flavor == Flavor.ANTHROPIC:
        assert sent["system"] == "Be brief."
    else:
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


@every_kind
def test_stream(client: openai.OpenAI, kind: Kind) -> None:
    events = list(client.responses.create(model=kind.alias, input=PROMPT, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds
    assert "response.output_text.done" in kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 2
    assert "".join(deltas) == kind.reply()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == kind.reply()
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == len(kind.reply().split())


@every_kind
def test_function_call_round_trip(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    first = client.responses.create(
        model=kind.alias,
        input=[{"role": "user", "content": "weather please"}],
        tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    calls = [o for o in first.output if isinstance(o, ResponseFunctionToolCall)]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == WEATHER_ARGS
    second = client.responses.create(
        model=kind.alias,
        input=[
            {"role": "user", "content": "weather please"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "21 C"},
        ],
        tools=[TOOL],
    )
    assert second.output_text == kind.reply("weather please")
    sent = _upstream(fakes[kind.id], kind)
    if kind.id not in NATIVE and kind.flavor != Flavor.ANTHROPIC:
        assert sent["messages"][-1]["role"] == "tool"


@every_kind
def test_function_call_stream(client: openai.OpenAI, kind: Kind) -> None:
    events = list(
        client.responses.create(
            model=kind.alias,
            input="weather please",
            tools=[TOOL],
            tool_choice="required",
            stream=True,
        )
    )
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    assert json.loads(done[0].arguments) == WEATHER_ARGS
    final = events[-1]
    assert final.type == "response.completed"
    calls = [o for o in final.response.output if isinstance(o, ResponseFunctionToolCall)]
    assert [c.name for c in calls] == ["get_weather"]


@every_kind
def test_json_schema_format(
    client: openai.OpenAI, fakes: dict[str, FakeProvider], kind: Kind
) -> None:
    r = client.responses.create(model=kind.alias, input="forecast", text=SCHEMA)
    sent = _upstream(fakes[kind.id], kind)
    if kind.flavor == Flavor.ANTHROPIC:  # no JSON mode there: an instruction with the schema
        assert '"rain"' in sent["system"]
        assert r.status == "completed"
    else:
        assert json.loads(r.output_text) == {"city": "example", "rain": True}


@every_kind
def test_max_output_tokens_incomplete(client: openai.OpenAI, kind: Kind) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(30))
    r = client.responses.create(model=kind.alias, input=long_prompt, max_output_tokens=16)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None
    assert r.usage.output_tokens == 16


def test_previous_response_id_refused_where_stateless(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="vllm-model", input="more", previous_response_id="resp_1")
    assert "previous_response_id" in str(caught.value)


def test_previous_response_id_passed_to_openai(
    client: openai.OpenAI, fakes: dict[str, FakeProvider]
) -> None:
    r = client.responses.create(model="openai-model", input="more", previous_response_id="resp_1")
    assert r.status == "completed"
    sent = _upstream(fakes["openai"], KINDS[0])
    assert sent["previous_response_id"] == "resp_1"


def test_bad_input(client: openai.OpenAI) -> None:
    bad: Any = [{"type": "web_search_call"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="vllm-model", input=bad)
    assert "web_search_call" in str(caught.value)


def test_stream_cut_upstream_raises_in_sdk(
    client: openai.OpenAI, fakes: dict[str, FakeProvider]
) -> None:
    vllm = next(k for k in KINDS if k.id == "vllm")
    fakes["vllm"].set_faults(api_key=_key(vllm), cut_stream_after=4)
    try:
        seen: list[str] = []
        stream = client.responses.create(model=vllm.alias, input=PROMPT, stream=True)
        with pytest.raises(openai.APIError, match="upstream stream failed"):
            seen.extend(event.type for event in stream)
    finally:
        fakes["vllm"].set_faults(api_key=_key(vllm))
    assert seen[0] == "response.created"
    assert "response.completed" not in seen
