"""Python functions as tools a model may call: JSON schemas from type hints, and running a call.

A tool's parameters become a pydantic model (``create_model`` from the signature), so the schema
the model sees and the validation of the arguments it sends come from one place. Whatever goes
wrong in a call (arguments that do not validate, an unknown tool, the function raising) becomes
the text of the tool result, for the model to read and recover from.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
import pydantic_core
from openai.types.chat import ChatCompletionFunctionToolParam

ToolFunction = Callable[..., Any]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    function: ToolFunction
    arguments: type[pydantic.BaseModel]

    @classmethod
    def of(cls, fn: ToolFunction, name: str | None = None) -> Tool:
        """The tool ``fn`` stands for. Raises TypeError for a signature JSON cannot carry."""
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise TypeError(f"tool {fn.__name__}: parameter {param.name} must be named")
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
        title = name or fn.__name__
        model = pydantic.create_model(
            title, __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        doc = inspect.getdoc(fn) or ""
        return cls(title, doc.split("\n\n", 1)[0].strip(), fn, model)

    def spec(self) -> ChatCompletionFunctionToolParam:
        """The tool as the chat completions API declares it."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        function: dict[str, Any] = {"name": self.name, "parameters": schema}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}  # type: ignore[typeddict-item]

    def _bind(self, arguments: str) -> dict[str, Any]:
        parsed = self.arguments.model_validate_json(arguments or "{}")
        return {key: getattr(parsed, key) for key in type(parsed).model_fields}

    def call(self, arguments: str) -> str:
        """Run the tool on the model's arguments (JSON text); the result or error as text."""
        try:
            result = self.function(**self._bind(arguments))
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except Exception as exc:  # the model reads it and may try again
            return failed(exc)
        return as_text(result)

    async def acall(self, arguments: str) -> str:
        """As ``call``; a plain function runs in a worker thread, off the event loop."""
        try:
            bound = self._bind(arguments)
            if inspect.iscoroutinefunction(self.function):
                result = await self.function(**bound)
            else:
                result = await asyncio.to_thread(self.function, **bound)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            return failed(exc)
        return as_text(result)


async def _awaited(value: typing.Awaitable[Any]) -> Any:
    return await value


def as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return pydantic_core.to_json(result).decode()


def failed(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return f"error: invalid arguments: {problems}"
    return f"error: {type(exc).__name__}: {exc}"


class Registry:
    """The tools a client offers, by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, fn: ToolFunction, name: str | None = None) -> Tool:
        tool = Tool.of(fn, name)
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is registered already")
        self._tools[tool.name] = tool
        return tool

    def __bool__(self) -> bool:
        return bool(self._tools)

    def specs(self) -> list[ChatCompletionFunctionToolParam]:
        return [t.spec() for t in self._tools.values()]

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)
