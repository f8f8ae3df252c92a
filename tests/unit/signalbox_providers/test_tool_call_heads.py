"""A streamed tool call names itself once: repeats of id, type and name after a call's first
delta (llama.cpp's server sends them in every delta) are dropped, as OpenAI's framing has it."""

from __future__ import annotations

import json
from typing import Any

from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.tool_call_heads import ToolCallHeads

CALL_ID = "call__0_get_weather_cmpl-1"


def llama_delta(piece: str, index: int = 0, name: str = "get_weather") -> dict[str, Any]:
    """One delta of a tool call as llama.cpp's server frames it."""
    call_id = CALL_ID if index == 0 else f"call__{index}_{name}_cmpl-1"
    return {
        "role": None,
        "content": None,
        "function_call": {"name": name, "arguments": piece},
        "tool_calls": [
            {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": piece},
            }
        ],
    }


def sse(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def joined(events: list[dict[str, Any]]) -> dict[str, str]:
    """What a client that joins every string of a call's deltas ends up with."""
    out = {"id": "", "type": "", "name": "", "arguments": ""}
    for chunk in events:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
            out["id"] += call.get("id") or ""
            out["type"] += call.get("type") or ""
            out["name"] += (call.get("function") or {}).get("name") or ""
            out["arguments"] += (call.get("function") or {}).get("arguments") or ""
    return out


def test_a_client_joining_llama_cpp_deltas_through_the_router_names_the_call_once() -> None:
    events = OpenAIEvents(client_usage=False)
    out = b"".join(events.feed(sse(llama_delta(p))) for p in ["{", '"city', '": "P'])
    out += events.feed(sse({"role": None, "tool_calls": None}, "tool_calls"))
    out += events.feed(b"data: [DONE]\n\n")
    chunks = [json.loads(line[6:]) for line in out.split(b"\n\n") if line.startswith(b"data: {")]
    assert joined(chunks) == {
        "id": CALL_ID,
        "type": "function",
        "name": "get_weather",
        "arguments": '{"city": "P',
    }
    legacy = [c["choices"][0]["delta"]["function_call"] for c in chunks[:3]]
    assert [f.get("name") for f in legacy] == ["get_weather", None, None]
    assert events.text_chars == len('{"city": "P')


def test_openai_framing_and_other_calls_pass_untouched() -> None:
    heads = ToolCallHeads()
    first = [{"index": 0, "delta": {"tool_calls": [llama_delta("{")["tool_calls"][0]]}}]
    assert not heads.trim(first)
    openai_next = [
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "x"}}]}}
    ]
    assert not heads.trim(openai_next)
    second_call = [{"index": 0, "delta": llama_delta("{", index=1, name="get_time")}]
    assert not heads.trim(second_call)  # a new call (index 1) is named in its first delta
    assert second_call[0]["delta"]["tool_calls"][0]["function"]["name"] == "get_time"
    repeat = [{"index": 0, "delta": llama_delta("y", index=1, name="get_time")}]
    assert heads.trim(repeat)
    call = repeat[0]["delta"]["tool_calls"][0]
    assert call == {"index": 1, "function": {"arguments": "y"}}


def test_a_plain_text_stream_is_passed_through_byte_for_byte() -> None:
    events = OpenAIEvents(client_usage=False)
    raw = sse({"role": "assistant", "content": "Hi", "tool_calls": None, "function_call": None})
    assert events.feed(raw) == raw
