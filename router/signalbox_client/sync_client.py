"""The blocking client: the official ``openai.OpenAI`` SDK under tasks, controls and a tool
loop. ``client.sdk`` is the SDK itself, for anything this layer does not cover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from signalbox_client import loop


class Client(loop.Base):
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        tasks: Mapping[str, str] | None = None,
        default_task: str | None = None,
        max_rounds: int = 8,
        sdk: openai.OpenAI | None = None,
        **sdk_options: Any,
    ) -> None:
        super().__init__(tasks, default_task, max_rounds)
        self.sdk = sdk or openai.OpenAI(base_url=base_url, api_key=api_key, **sdk_options)

    def complete(
        self,
        task: str | None,
        prompt: str | Sequence[ChatCompletionMessageParam],
        *,
        controls: loop.Controls | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """One chat completion for ``task`` (registered tools offered, none run)."""
        kwargs = loop.request(self, task, loop.conversation(prompt), controls or _NONE, params)
        completion: ChatCompletion = self.sdk.chat.completions.create(**kwargs)
        return completion

    def run(
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
            completion = self.complete(task, messages, controls=controls, **params)
            calls = loop.calls_in(completion)
            messages.append(loop.assistant(completion, calls))
            if not calls:
                text = completion.choices[0].message.content or ""
                return loop.Answer(text, completion, messages, rounds, ran)
            if rounds == limit:
                break
            for call in calls:
                tool = self.tools.get(call.function.name)
                text = tool.call(call.function.arguments) if tool else loop.unknown(call)
                ran.append(call.function.name)
                messages.append(loop.result(call, text))
        raise loop.ToolLoopLimit(limit, messages)


_NONE = loop.Controls()
