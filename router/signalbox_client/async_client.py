"""The asyncio client: the official ``openai.AsyncOpenAI`` SDK under tasks, controls and a tool
loop. The tools one answer asks for run concurrently; plain functions run in worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from signalbox_client import loop


class AsyncClient(loop.Base):
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        tasks: Mapping[str, str] | None = None,
        default_task: str | None = None,
        max_rounds: int = 8,
        sdk: openai.AsyncOpenAI | None = None,
        **sdk_options: Any,
    ) -> None:
        super().__init__(tasks, default_task, max_rounds)
        self.sdk = sdk or openai.AsyncOpenAI(base_url=base_url, api_key=api_key, **sdk_options)

    async def complete(
        self,
        task: str | None,
        prompt: str | Sequence[ChatCompletionMessageParam],
        *,
        controls: loop.Controls | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """One chat completion for ``task`` (registered tools offered, none run)."""
        kwargs = loop.request(self, task, loop.conversation(prompt), controls or _NONE, params)
        completion: ChatCompletion = await self.sdk.chat.completions.create(**kwargs)
        return completion

    async def run(
        self,
        task: str | None,
        prompt: str | Sequence[ChatCompletionMessageParam],
        *,
        controls: loop.Controls | None = None,
        max_rounds: int | None = None,
        **params: Any,
    ) -> loop.Answer:
        """Ask, run the tools the model calls, and ask again until it answers."""
        messages = loop.conversation(prompt)
        ran: list[str] = []
        limit = max_rounds or self.max_rounds
        for rounds in range(1, limit + 1):
            completion = await self.complete(task, messages, controls=controls, **params)
            calls = loop.calls_in(completion)
            messages.append(loop.assistant(completion, calls))
            if not calls:
                text = completion.choices[0].message.content or ""
                return loop.Answer(text, completion, messages, rounds, ran)
            if rounds == limit:
                break
            results = await asyncio.gather(*(self._call(c) for c in calls))
            for call, text in zip(calls, results, strict=True):
                ran.append(call.function.name)
                messages.append(loop.result(call, text))
        raise loop.ToolLoopLimit(limit, messages)

    async def _call(self, call: Any) -> str:
        tool = self.tools.get(call.function.name)
        return await tool.acall(call.function.arguments) if tool else loop.unknown(call)

    async def close(self) -> None:
        await self.sdk.close()


_NONE = loop.Controls()
