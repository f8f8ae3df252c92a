"""OpenAI Responses ingress as pure functions: requests into the internal chat form, chat
answers and streams back into Responses objects and events, checked against the ``openai``
SDK's own types; and which provider types get the request as it came."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects, ingress
from signalbox_providers.dialects.base import RequestParts, StreamFailed
from signalbox_providers.streams import OpenAIEvents
from signalbox_providers.translate import responses_to_chat
from signalbox_providers.translate.responses_to_chat import (
    ChatResponseEvents,
    InvalidResponses,
    stateful,
    to_chat,
)
from signalbox_providers.translate.responses_to_openai import NativeResponseEvents

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def test_text_input_and_options() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": "hi",
            "instructions": "Be brief.",
            "max_output_tokens": 50,
            "temperature": 0.2,
            "stream": True,
            "text": {"format": {"type": "json_schema", "name": "f", "schema": {"type": "object"}}},
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert chat["max_tokens"] == 50
    assert chat["temperature"] == 0.2
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "f", "schema": {"type": "object"}},
    }


def test_items() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "data:image/png;base64,QQ=="},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "done"}],
                },
            ],
            "tools": [{"type": "function", "name": "a", "parameters": {}, "strict": None}],
            "tool_choice": {"type": "function", "name": "a"},
            "parallel_tool_calls": False,
        }
    )
    user, calls, out1, out2, assistant = chat["messages"]
    assert user["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,QQ=="},
    }
    assert [c["id"] for c in calls["tool_calls"]] == ["c1", "c2"]
    assert out1 == {"role": "tool", "tool_call_id": "c1", "content": "one"}
    assert out2["tool_call_id"] == "c2"
    assert assistant == {"role": "assistant", "content": "done"}
    assert chat["tools"] == [{"type": "function", "function": {"name": "a", "parameters": {}}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x"},
        {"model": "m"},
        {"model": "m", "input": []},
        {"model": "m", "input": [{"type": "web_search_call"}]},
        {"model": "m", "input": "x", "tools": [{"type": "web_search"}]},
        {"model": "m", "input": "x", "max_output_tokens": 0},
        {"model": "m", "input": [{"role": "tool", "content": "x"}]},
    ],
)
def test_invalid(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponses):
        to_chat(body)


def test_stateful() -> None:
    assert stateful({"previous_response_id": "resp_1"})
    assert stateful({"conversation": "conv_1"})
    assert not stateful({"input": "x"})
    assert to_chat({"model": "m", "previous_response_id": "resp_1"})["messages"] == []


def _chat(finish: str, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 5,
        "model": "up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }


def test_answer_validates_as_sdk_response() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "a", "arguments": "{}"}}
    body = responses_to_chat.from_chat(_chat("tool_calls", content="hi", tool_calls=[call]), {})
    r = Response.model_validate(body)
    assert r.status == "completed"
    assert r.output_text == "hi"
    assert [o.type for o in r.output] == ["message", "function_call"]
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (4, 2, 6)
    assert body["store"] is False


def test_cut_answer_is_incomplete() -> None:
    r = Response.model_validate(responses_to_chat.from_chat(_chat("length", content="hi"), {}))
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


def _sse(chunk: dict[str, Any] | str) -> bytes:
    return b"data: " + (chunk if isinstance(chunk, str) else json.dumps(chunk)).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_chat_stream_becomes_responses_events() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "a"}}
    upstream: list[dict[str, Any] | str] = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{**head, "function": {"name": "a", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        _chunk({}, "tool_calls"),
        {**_chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        "[DONE]",
    ]
    stream = ChatResponseEvents(OpenAIEvents(True), {"instructions": "x"}, "m")
    raw = b"".join(stream.feed(_sse(c)) for c in upstream)
    assert stream.done
    events = []
    for block in raw.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        event = EVENTS.validate_python(json.loads(data.removeprefix("data: ")))
        assert name == f"event: {event.type}"
        events.append(event)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "Hello"
    assert final.response.instructions == "x"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == 2


def test_native_stream_passes_events_and_meters() -> None:
    done = {
        "type": "response.completed",
        "sequence_number": 1,
        "response": {"usage": {"input_tokens": 5, "output_tokens": 7}},
    }
    delta = {"type": "response.output_text.delta", "delta": "Hi there", "sequence_number": 1}
    wire = (
        b"event: response.created\ndata: "
        + orjson.dumps({"type": "response.created", "sequence_number": 0, "response": {}})
        + b"\n\nevent: response.output_text.delta\ndata: "
        + orjson.dumps(delta)
        + b"\n\n"
        + b"event: response.completed\ndata: "
        + orjson.dumps(done)
        + b"\n\n"
    )
    stream = NativeResponseEvents()
    assert stream.feed(wire[:30]) + stream.feed(wire[30:]) == wire
    assert stream.done
    assert stream.usage == (5, 7)
    assert (stream.text_chars, stream.text_chunks) == (8, 1)
    failed = NativeResponseEvents()
    with pytest.raises(StreamFailed):
        failed.feed(b'event: error\ndata: {"type":"error","message":"boom"}\n\n')


@pytest.mark.parametrize(
    ("ptype", "base", "url"),
    [
        (ProviderType.OPENAI, "https://api.example/v1", "https://api.example/v1/responses"),
        (ProviderType.AZURE_OPENAI, "https://az.example", "https://az.example/openai/v1/responses"),
    ],
)
def test_passed_through_to_openai_and_azure(ptype: ProviderType, base: str, url: str) -> None:
    original = {"model": "alias", "input": "x", "previous_response_id": "resp_1"}
    dialect = ingress.for_responses(original)(dialects.dialect(ptype))
    out = dialect.request(RequestParts("chat", base, to_chat(original), "upstream", {}))
    assert out.url == url
    assert orjson.loads(out.data) == {**original, "model": "upstream"}


@pytest.mark.parametrize("ptype", [ProviderType.OPENAI_COMPATIBLE, ProviderType.VLLM])
def test_stored_state_refused_elsewhere(ptype: ProviderType) -> None:
    original = {"model": "alias", "input": "x", "previous_response_id": "resp_1"}
    dialect = ingress.for_responses(original)(dialects.dialect(ptype))
    with pytest.raises(dialects.Unsupported, match="previous_response_id"):
        dialect.request(RequestParts("chat", "http://x/v1", to_chat(original), "upstream", {}))
    plain = {"model": "alias", "input": "x"}
    dialect = ingress.for_responses(plain)(dialects.dialect(ptype))
    out = dialect.request(RequestParts("chat", "http://x/v1", to_chat(plain), "upstream", {}))
    assert out.url == "http://x/v1/chat/completions"


def test_native_stream_counts_tool_call_arguments_for_estimates() -> None:
    """A stream that only calls a tool and reports no usage is still estimated above 0."""
    args = {"type": "response.function_call_arguments.delta", "delta": '{"city"', "item_id": "fc"}
    end = {"type": "response.completed", "sequence_number": 2, "response": {}}
    stream = NativeResponseEvents()
    stream.feed(
        b'event: response.created\ndata: {"type": "response.created", "response": {}}\n\n'
        b"event: response.function_call_arguments.delta\ndata: "
        + orjson.dumps(args)
        + b"\n\nevent: response.completed\ndata: "
        + orjson.dumps(end)
        + b"\n\n"
    )
    assert stream.done
    assert stream.usage is None
    assert (stream.text_chars, stream.text_chunks) == (7, 1)


def test_interleaved_parallel_tool_calls_keep_their_own_items() -> None:
    def piece(index: int, arguments: str, **head: Any) -> dict[str, Any]:
        name = head.pop("name", None)
        function = {"arguments": arguments, **({"name": name} if name else {})}
        return _chunk({"tool_calls": [{"index": index, **head, "function": function}]})

    upstream: list[dict[str, Any] | str] = [
        _chunk({"role": "assistant"}),
        piece(0, "", id="call_a", type="function", name="fa"),
        piece(1, "", id="call_b", type="function", name="fb"),
        piece(0, '{"x":'),
        piece(1, '{"y":2}'),
        piece(0, "1}"),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    stream = ChatResponseEvents(OpenAIEvents(False), {}, "m")
    raw = b"".join(stream.feed(_sse(c)) for c in upstream)
    events = [
        EVENTS.validate_python(json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in raw.decode().strip().split("\n\n")
    ]
    pieces: dict[int, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            pieces[e.output_index] = pieces.get(e.output_index, "") + e.delta
    assert pieces == {0: '{"x":1}', 1: '{"y":2}'}
    final = events[-1]
    assert final.type == "response.completed"
    calls = [(o.call_id, o.name, o.arguments) for o in final.response.output]
    assert calls == [("call_a", "fa", '{"x":1}'), ("call_b", "fb", '{"y":2}')]


def test_tool_arguments_given_as_an_object_are_json() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "a", "arguments": {"k": 1}}}
    r = Response.model_validate(
        responses_to_chat.from_chat(_chat("tool_calls", tool_calls=[call]), {})
    )
    assert [(o.type, o.arguments) for o in r.output] == [("function_call", '{"k":1}')]


_CREATED = {"type": "response.created", "response": {"id": "resp_1"}}
_ITEM = {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message"}}
_PART = {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": {}}


def _text(output_index: Any, content_index: Any, delta: Any) -> dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "output_index": output_index,
        "content_index": content_index,
        "delta": delta,
    }


@pytest.mark.parametrize(
    ("events", "said"),
    [
        ([{"type": "response.completed", "response": {}}], "does not begin with response.created"),
        ([{"type": "response.created", "response": 7}], "without its response"),
        ([_CREATED, {**_ITEM, "output_index": 1}], "added out of order"),
        ([_CREATED, {**_ITEM, "item": "x"}], "not an object"),
        ([_CREATED, _text(0, 0, "hi")], "never added"),
        ([_CREATED, _ITEM, _text(0, 0, "hi")], "content part never added"),
        ([_CREATED, _ITEM, {**_PART, "content_index": 1}], "content part added out of order"),
        ([_CREATED, _ITEM, _PART, _text(0, 0, 5)], "delta is not text"),
        ([_CREATED, _ITEM, _PART, _text(True, 0, "hi")], "never added"),
        ([_CREATED, {"type": "response.completed", "response": None}], "without its response"),
        ([_CREATED, ("response.ping", {"type": "response.completed"})], "carries another type"),
    ],
)
def test_a_native_stream_out_of_shape_or_order_fails_before_its_event_passes(
    events: list[Any], said: str
) -> None:
    stream = NativeResponseEvents()
    named = [e if isinstance(e, tuple) else (e["type"], e) for e in events]
    *good, (name, last) = named
    for good_name, payload in good:
        assert stream.feed(f"event: {good_name}\ndata: {json.dumps(payload)}\n\n".encode())
    with pytest.raises(StreamFailed, match=said):
        stream.feed(f"event: {name}\ndata: {json.dumps(last)}\n\n".encode())


@pytest.mark.parametrize("api", ["messages", "responses"])
def test_a_chat_stream_that_finished_without_usage_or_done_completes_in_other_apis(
    api: str,
) -> None:
    # The translation asks the provider for usage, but its events need none: a provider that
    # never sends usage and ends after its finish_reason still gives a whole stream.
    original = {"model": "m", "input": "x"} if api == "responses" else {"model": "m"}
    wrap = ingress.for_responses(original) if api == "responses" else ingress.for_messages(original)
    ptype = ProviderType.OPENAI_COMPATIBLE
    stream = wrap(dialects.dialect(ptype)).stream("m", False)
    out = stream.feed(_sse(_chunk({"content": "Hello"})) + _sse(_chunk({}, "stop")))
    out += stream.end()
    assert stream.done
    assert stream.usage is None  # estimated by the router from the text it counted
    assert (stream.text_chars, stream.text_chunks) == (5, 1)
    last = b"event: message_stop" if api == "messages" else b"event: response.completed"
    assert last in out.split(b"\n\n")[-2]
    bare = dialects.dialect(ptype).stream("m", True)  # a chat client that asked for usage
    bare.feed(_sse(_chunk({"content": "Hello"})) + _sse(_chunk({}, "stop")))
    with pytest.raises(StreamFailed, match="ended before it finished"):
        bare.end()
