"""``signalbox_client`` end to end: the official openai SDK under the client, a real router
process, and fake providers that call the first tool they are offered (and answer in words once
a tool result is the last message). Tasks map to two policies, one on an OpenAI-compatible fake
and one on an Anthropic fake (tool calls translated by the router both ways)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import openai
import pydantic
import pytest

import signalbox_client
from signalbox_fake import FakeProvider, Flavor
from tests.support.router import (
    Doc,
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
    secret,
)

MODEL = "fake-model"
TASKS = {"quick": "chat-quick", "deep": "chat-deep", "strict": "chat-strict"}


@dataclass
class World:
    router: RouterProcess
    fakes: dict[str, FakeProvider]

    def client(self, **options: Any) -> signalbox_client.Client:
        return signalbox_client.Client(
            base_url=self.router.base_url, api_key="unused", tasks=TASKS, max_retries=0, **options
        )

    def async_client(self) -> signalbox_client.AsyncClient:
        return signalbox_client.AsyncClient(
            base_url=self.router.base_url, api_key="unused", tasks=TASKS, max_retries=0
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fakes = {
        "quick": FakeProvider("quick", Flavor.OPENAI, [MODEL]),
        "deep": FakeProvider("deep", Flavor.ANTHROPIC, [MODEL]),
        "strict-a": FakeProvider("strict-a", Flavor.OPENAI, [MODEL]),
        "strict-b": FakeProvider("strict-b", Flavor.OPENAI, [MODEL]),
    }
    with running_fakes(*fakes.values()):  # each fake has its port once it runs
        docs = _docs(fakes)
        folder = tmp_path_factory.mktemp("client") / "manifests"
        with running_router(folder, docs) as router:
            yield World(router, fakes)


def _docs(fakes: dict[str, FakeProvider]) -> list[Doc]:
    return [
        secret("keys", {"anthropic": "sk-ant-test"}),
        provider("quick", "OpenAICompatible", fakes["quick"].base_url),
        provider("deep", "Anthropic", fakes["deep"].base_url, secret=("keys", "anthropic")),
        provider("strict-a", "OpenAICompatible", fakes["strict-a"].base_url, priority=1),
        provider("strict-b", "OpenAICompatible", fakes["strict-b"].base_url, priority=2),
        policy("chat-quick", ["chat-quick"], [{"name": "quick", "model": MODEL}]),
        policy("chat-deep", ["chat-deep"], [{"name": "deep", "model": MODEL}]),
        policy(
            "chat-strict",
            ["chat-strict"],
            [{"name": "strict-a", "model": MODEL}, {"name": "strict-b", "model": MODEL}],
            failover={"backoff": {"base": "10ms", "max": "10ms"}},
        ),
    ]


def forecast(
    city: Annotated[str, pydantic.Field(description="The city to look up")],
    unit: Literal["c", "f"] = "c",
    days: int = 1,
) -> dict[str, Any]:
    """The weather forecast for a city.

    Everything after the first paragraph stays out of the tool's description."""
    return {"city": city, "unit": unit, "days": days, "high": 21}


def _last_request(fake: FakeProvider) -> dict[str, Any]:
    body = fake.seen[-1].body
    assert body is not None
    return body


@pytest.mark.parametrize("task", ["quick", "deep"])
def test_a_registered_tool_runs_until_the_model_answers(world: World, task: str) -> None:
    client = world.client()
    client.register_tool(forecast)
    before = len(world.fakes[task].seen)
    answer = client.run(
        task,
        "What is the weather in Lisbon?",
        controls=signalbox_client.Controls(priority="critical"),
    )
    assert answer.rounds == 2
    assert answer.tool_calls == ["forecast"]
    assert answer.text.startswith(f"Hello from {task}.")
    assert len(world.fakes[task].seen) == before + 2  # the task's policy served both requests
    tool_message = next(m for m in answer.messages if m["role"] == "tool")
    assert json.loads(str(tool_message["content"])) == {
        "city": "example",
        "unit": "c",
        "days": 1,
        "high": 21,
    }
    assert answer.messages[-1]["role"] == "assistant"
    if task == "quick":  # the schema, as the OpenAI-compatible provider received it
        tools = _last_request(world.fakes["quick"])["tools"]
        function = tools[0]["function"]
        assert function["name"] == "forecast"
        assert function["description"] == "The weather forecast for a city."
        params = function["parameters"]
        assert params["required"] == ["city"]
        assert params["properties"]["city"]["description"] == "The city to look up"
        assert params["properties"]["unit"]["enum"] == ["c", "f"]
        assert params["properties"]["days"]["type"] == "integer"


def test_a_tool_error_goes_back_to_the_model(world: World) -> None:
    client = world.client()

    @client.register_tool
    def lookup(order_id: int) -> str:
        raise LookupError(f"no order {order_id}")

    answer = client.run("quick", "Where is my order?")
    assert answer.rounds == 2
    sent = _last_request(world.fakes["quick"])["messages"]
    assert sent[-1]["role"] == "tool"
    assert sent[-1]["content"] == "error: LookupError: no order 1"


def test_arguments_that_do_not_validate_go_back_to_the_model(world: World) -> None:
    client = world.client()

    def narrow(count: Annotated[int, pydantic.Field(ge=5)]) -> int:
        return count

    client.register_tool(narrow)
    # The fake sends 1 (its sample integer, the schema's minimum aside).
    answer = client.run("quick", "Count")
    tool_message = next(m for m in answer.messages if m["role"] == "tool")
    assert str(tool_message["content"]).startswith("error: invalid arguments: count:")


def test_the_loop_is_bounded(world: World) -> None:
    client = world.client(max_rounds=1)
    client.register_tool(forecast)
    with pytest.raises(signalbox_client.ToolLoopLimit) as raised:
        client.run("quick", "Weather?")
    assert raised.value.rounds == 1
    assert raised.value.messages[-1]["role"] == "assistant"
    assert raised.value.messages[-1]["tool_calls"][0]["function"]["name"] == "forecast"


def test_a_plain_completion_and_unknown_tasks(world: World) -> None:
    client = world.client()
    completion = client.complete("deep", "hi")  # no tools registered: none offered
    assert completion.choices[0].message.content.startswith("Hello from deep.")
    assert "tools" not in _last_request(world.fakes["deep"])
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        client.complete("nope", "hi")
    with pytest.raises(ValueError, match="priority"):
        client.complete("quick", "hi", controls=signalbox_client.Controls(priority="urgent"))


def test_controls_reach_the_router(world: World) -> None:
    client = world.client()
    world.fakes["strict-a"].set_faults(status=503)
    served = client.complete("strict", "hi")
    assert served.choices[0].message.content.startswith("Hello from strict-b.")
    before = len(world.fakes["strict-b"].seen)
    with pytest.raises(openai.APIStatusError) as raised:
        client.complete("strict", "hi", controls=signalbox_client.Controls(failover=False))
    assert raised.value.status_code == 502
    assert len(world.fakes["strict-b"].seen) == before  # one attempt only
    world.fakes["strict-a"].clear_faults()


async def test_the_async_client_runs_async_and_plain_tools(world: World) -> None:
    client = world.async_client()
    ran: list[str] = []

    @client.register_tool
    async def fetch_page(url: str, max_bytes: int = 1000) -> dict[str, Any]:
        """Fetch a page."""
        ran.append(url)
        return {"url": url, "size": max_bytes}

    client.register_tool(forecast)  # offered second: the fake calls the first only
    try:
        answer = await client.run("deep", "Read the page")
    finally:
        await client.close()
    assert ran == ["example"]
    assert answer.rounds == 2
    assert answer.tool_calls == ["fetch_page"]
    assert answer.text.startswith("Hello from deep.")
    tool_message = next(m for m in answer.messages if m["role"] == "tool")
    assert json.loads(str(tool_message["content"])) == {
        "url": "example",
        "size": 1,
    }  # the fake fills every field


async def test_the_async_loop_is_bounded_too(world: World) -> None:
    client = world.async_client()
    client.register_tool(forecast)
    try:
        with pytest.raises(signalbox_client.ToolLoopLimit):
            await client.run("quick", "Weather?", max_rounds=1)
    finally:
        await client.close()
