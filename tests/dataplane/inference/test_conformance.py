"""Fake-vs-real conformance: one set of wire-level assertions, run against the fake provider and
against the real server it plays, over raw HTTP on loopback.

Type ``OpenAICompatible``: the fake's ``llamacpp`` flavor against llama.cpp's server
(llama-cpp-python 0.3.36). Where they differed, the fake was changed to follow that server
(router/signalbox_fake/llamacpp.py): streams ignore ``stream_options.include_usage``,
an unknown model is answered by the default model, a prompt over the
context window is a 400 ``context_length_exceeded``. Type ``Ollama``: the fake's ``ollama``
flavor against Ollama v0.17.4 (see test_conformance_ollama.py).

Tool calls are compared in test_conformance_tools.py, against ``tiny-tools`` (the tiny chat
model with llama.cpp's ``chatml-function-calling`` chat format, a forced ``tool_choice``): the
fake's ``llamacpp`` flavor follows llama.cpp's server there too, not OpenAI.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.support import inference

MESSAGES = [{"role": "user", "content": "tell me something"}]


def stream_chunks(server: inference.Server, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of a streamed chat completion, once its SSE framing has been checked."""
    with httpx.stream(
        "POST", server.base_url + "/chat/completions", json=body, timeout=60, trust_env=False
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    *chunks, done = events(raw)
    assert done == b"[DONE]"
    return [orjson.loads(c) for c in chunks]


def post(server: inference.Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=30, trust_env=False)


def chat(server: inference.Server, **extra: Any) -> dict[str, Any]:
    return {"model": server.chat_model, "messages": MESSAGES, "max_tokens": 8, **extra}


def events(raw: bytes) -> list[bytes]:
    """The data of each SSE event."""
    text = raw.replace(b"\r\n", b"\n")
    out = []
    for event in text.split(b"\n\n"):
        data = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if data:
            out.append(b"\n".join(data))
    return out


def test_the_model_list(server: inference.Server) -> None:
    resp = httpx.get(server.base_url + "/models", timeout=10, trust_env=False)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    for item in body["data"]:
        assert set(item) == {"id", "object", "owned_by", "permissions"}
        assert (item["object"], item["owned_by"], item["permissions"]) == ("model", "me", [])
    served = {server.chat_model, server.embed_model, server.tools_model}
    assert {m["id"] for m in body["data"]} == served


def assert_usage(usage: dict[str, Any], max_completion: int) -> None:
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert all(type(v) is int for v in usage.values())
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= max_completion
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_plain_chat_answer(server: inference.Server) -> None:
    resp = post(server, "/chat/completions", chat(server))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert type(body["created"]) is int
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    assert_usage(body["usage"], 8)


def test_a_stream_finishes_once_and_never_carries_usage(
    server: inference.Server,
) -> None:
    parsed = stream_chunks(
        server, chat(server, stream=True, stream_options={"include_usage": True})
    )
    assert {c["object"] for c in parsed} == {"chat.completion.chunk"}
    assert len({c["id"] for c in parsed}) == 1
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [ch["finish_reason"] for c in parsed for ch in c["choices"] if ch["finish_reason"]]
    assert len(finishes) == 1
    assert finishes[0] in {"stop", "length"}
    assert parsed[-1]["choices"][0]["finish_reason"] == finishes[0]
    assert all(c.get("usage") is None for c in parsed)  # include_usage is ignored


def test_an_unknown_model_is_answered_by_the_default_model(server: inference.Server) -> None:
    resp = post(server, "/chat/completions", chat(server, model="no-such-model"))
    assert resp.status_code == 200
    assert resp.json()["object"] == "chat.completion"


def test_a_prompt_over_the_context_window_is_a_context_length_error(
    server: inference.Server,
) -> None:
    long = [{"role": "user", "content": "word " * inference.CONTEXT}]
    resp = post(server, "/chat/completions", chat(server, messages=long))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert f"maximum context length is {inference.CONTEXT} tokens" in error["message"]


def test_embeddings(server: inference.Server) -> None:
    resp = post(server, "/embeddings", {"model": server.embed_model, "input": ["a b", "c"]})
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    vectors = [d["embedding"] for d in body["data"]]
    assert len({len(v) for v in vectors}) == 1
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    assert body["usage"]["prompt_tokens"] > 0
