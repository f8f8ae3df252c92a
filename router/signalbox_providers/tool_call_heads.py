"""A streamed tool call names itself once, as OpenAI's API does, whatever the upstream repeats.

OpenAI sends a call's ``id``, ``type`` and ``function.name`` in its first delta only; later
deltas carry just ``index`` and a piece of ``arguments``, and clients build the call by joining
what each delta holds. llama.cpp's OpenAI-compatible server repeats id, type and name in every
delta (and mirrors them in the legacy ``function_call``), so a client that joins, such as the
openai SDK's ``stream()`` helper, ends up with a tool named ``get_weatherget_weather…``.
:class:`ToolCallHeads` drops the repeats from the deltas that follow a call's first.
"""

from __future__ import annotations

from typing import Any


class ToolCallHeads:
    """The calls (and legacy function calls) already named in one stream."""

    def __init__(self) -> None:
        self._named: set[tuple[Any, Any]] = set()  # (choice index, call index)
        self._legacy: set[Any] = set()  # choice indexes whose function_call was named

    def trim(self, choices: list[Any]) -> bool:
        """Drop repeated heads from ``choices`` in place; True when anything was dropped."""
        trimmed = False
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            at = choice.get("index", 0)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    trimmed |= self._trim_call(at, call)
            legacy = delta.get("function_call")
            if isinstance(legacy, dict) and "name" in legacy:
                if at in self._legacy:
                    del legacy["name"]
                    trimmed = True
                self._legacy.add(at)
        return trimmed

    def _trim_call(self, at: Any, call: dict[str, Any]) -> bool:
        key = (at, call.get("index", 0))
        if key not in self._named:
            self._named.add(key)
            return False
        function = call.get("function")
        repeated = [call.pop(field) for field in ("id", "type") if field in call]
        if isinstance(function, dict) and "name" in function:
            repeated.append(function.pop("name"))
        return bool(repeated)
