"""What the sync and async clients share: task names to model names, the control headers, and
the steps of a tool loop that do not talk to the network.

The router keeps no conversation, so the loop lives here: send the conversation with the
registered tools; when the model asks for tools, run them, append their results and send it
again; stop when the model answers, or raise ``ToolLoopLimit`` after ``max_rounds`` requests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolMessageParam,
)

from signalbox_client import tools

Priority = Literal["critical", "standard", "sheddable"]
PRIORITIES = ("critical", "standard", "sheddable")
Messages = list[ChatCompletionMessageParam]


class ToolLoopLimit(RuntimeError):
    """The model still asked for tools after ``rounds`` requests; ``messages`` is the
    conversation so far (tool results included), to inspect or continue."""

    def __init__(self, rounds: int, messages: Messages) -> None:
        super().__init__(f"the model still asked for tools after {rounds} request(s)")
        self.rounds, self.messages = rounds, messages


@dataclass
class Answer:
    """The model's final answer and how it came about."""

    text: str
    completion: ChatCompletion  # the last one
    messages: Messages  # the whole conversation, the answer included
    rounds: int  # requests made
    tool_calls: list[str] = field(default_factory=list)  # tools run, in order


@dataclass(frozen=True)
class Controls:
    """The router's per-request headers (see the router's README section)."""

    priority: Priority | None = None
    max_attempts: int | None = None
    timeout: float | None = None  # seconds for the whole request
    failover: bool = True

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.priority is not None:
            if self.priority not in PRIORITIES:
                raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
            out["x-signalbox-priority"] = self.priority
        if self.max_attempts is not None:
            out["x-signalbox-max-attempts"] = str(self.max_attempts)
        if self.timeout is not None:
            out["x-signalbox-timeout"] = f"{self.timeout:g}"
        if not self.failover:
            out["x-signalbox-failover"] = "off"
        return out


class Base:
    """Tasks and tools; the SDK calls are the subclasses'."""

    def __init__(
        self, tasks: Mapping[str, str] | None, default_task: str | None, max_rounds: int
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.tasks = dict(tasks or {})
        self.default_task = default_task
        self.max_rounds = max_rounds
        self.tools = tools.Registry()

    def model_for(self, task: str | None) -> str:
        """The model name (a RoutingPolicy's) that serves ``task``."""
        name = task or self.default_task
        if name is None:
            raise ValueError("no task given and no default_task set")
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise ValueError(f"unknown task {name!r} (known: {known})") from None

    @overload
    def register_tool(self, fn: tools.ToolFunction, *, name: str | None = None) -> Any: ...
    @overload
    def register_tool(
        self, fn: None = None, *, name: str | None = None
    ) -> Callable[[tools.ToolFunction], Any]: ...
    def register_tool(
        self, fn: tools.ToolFunction | None = None, *, name: str | None = None
    ) -> Any:
        """Offer ``fn`` to the model as a tool (also usable as a decorator); returns ``fn``."""
        if fn is None:
            return lambda f: self.register_tool(f, name=name)
        self.tools.add(fn, name)
        return fn


def conversation(prompt: str | Sequence[ChatCompletionMessageParam]) -> Messages:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def calls_in(completion: ChatCompletion) -> list[ChatCompletionMessageFunctionToolCall]:
    message = completion.choices[0].message
    return [c for c in message.tool_calls or () if c.type == "function"]


def assistant(
    completion: ChatCompletion, calls: Sequence[ChatCompletionMessageFunctionToolCall]
) -> ChatCompletionAssistantMessageParam:
    """The model's turn, as it goes back in the next request."""
    out: ChatCompletionAssistantMessageParam = {
        "role": "assistant",
        "content": completion.choices[0].message.content,
    }
    if calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in calls
        ]
    return out


def result(
    call: ChatCompletionMessageFunctionToolCall, text: str
) -> ChatCompletionToolMessageParam:
    return {"role": "tool", "tool_call_id": call.id, "content": text}


def unknown(call: ChatCompletionMessageFunctionToolCall) -> str:
    return f"error: there is no tool named {call.function.name!r}"


def request(
    base: Base, task: str | None, messages: Messages, controls: Controls, params: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments of one ``chat.completions.create`` call."""
    kwargs: dict[str, Any] = {"model": base.model_for(task), "messages": messages, **params}
    if base.tools and "tools" not in params:
        kwargs["tools"] = base.tools.specs()
    headers = controls.headers()
    if headers:
        kwargs["extra_headers"] = {**headers, **(params.get("extra_headers") or {})}
    return kwargs
