"""Fake-vs-real conformance for type ``Ollama``: the same wire-level assertions against the fake's
``ollama`` flavor and a real Ollama v0.17.4 serving the tiny models, over raw HTTP on loopback.
The routes are the ones Signalbox uses: ``/api/tags`` (the operator's ListModels probe),
``/api/chat`` (plain and NDJSON streams, what the router translates) and ``/v1/embeddings``.
Where the two differed, the fake was changed to follow Ollama
(router/signalbox_fake/ollama_api.py): an unknown model's 404 says
``model '<name>' not found``, and a prompt over ``num_ctx`` is cut to fit (a 400 with
``truncate: false``). Tool calls are not compared: the tiny model's template has no tools, so
Ollama refuses them (400 ``... does not support tools``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import inference

MESSAGES = [{"role": "user", "content": "tell me something"}]
TIMINGS = {
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}


@pytest.fixture(scope="module", params=["fake ollama", "ollama"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[inference.Server]:
    if request.param == "ollama":
        yield request.getfixturevalue("ollama")
        return
    models = [inference.OLLAMA_CHAT, inference.OLLAMA_EMBED]
    with FakeProvider("tiny", Flavor.OLLAMA, models).running_in_thread() as fake:
        log = tmp_path_factory.mktemp("fake") / "none.log"
        yield inference.Server("fake", fake.url, models[0], models[1], log)


def post(server: inference.Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30, trust_env=False)


def chat(server: inference.Server, **extra: Any) -> dict[str, Any]:
    return {
        "model": server.chat_model,
        "messages": MESSAGES,
        "options": {"num_predict": 6},
        **extra,
    }


def test_the_model_list(server: inference.Server) -> None:
    resp = httpx.get(server.url + "/api/tags", timeout=10, trust_env=False)
    assert resp.status_code == 200
    models = resp.json()["models"]
    assert {m["name"] for m in models} == {server.chat_model, server.embed_model}
    for m in models:
        assert {"name", "model", "modified_at", "size", "digest", "details"} <= set(m)
        assert m["name"] == m["model"]
        assert m["details"]["format"] == "gguf"
        assert type(m["size"]) is int


def check_final(line: dict[str, Any], model: str) -> None:
    assert line["done"] is True
    assert line["model"] == model
    assert line["done_reason"] in {"stop", "length"}
    assert set(line) >= TIMINGS
    assert line["prompt_eval_count"] > 0
    assert 0 < line["eval_count"] <= 6


def test_a_plain_chat_answer(server: inference.Server) -> None:
    resp = post(server, "/api/chat", chat(server, stream=False))
    assert resp.status_code == 200
    body = resp.json()
    assert body["message"]["role"] == "assistant"
    assert isinstance(body["message"]["content"], str)
    check_final(body, server.chat_model)


def test_a_stream_is_ndjson_ending_in_one_done_line(server: inference.Server) -> None:
    with httpx.stream(
        "POST", server.url + "/api/chat", json=chat(server), timeout=30, trust_env=False
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    *pieces, final = lines
    assert pieces
    assert all(p["done"] is False and p["message"]["role"] == "assistant" for p in pieces)
    check_final(final, server.chat_model)


def test_an_unknown_model_is_a_404_with_an_error_string(server: inference.Server) -> None:
    resp = post(server, "/api/chat", chat(server, model="no-such-model"))
    assert resp.status_code == 404
    assert resp.json() == {"error": "model 'no-such-model' not found"}


def test_a_prompt_over_the_context_window_is_cut_to_fit_unless_truncate_is_false(
    server: inference.Server,
) -> None:
    long = [{"role": "user", "content": "word " * inference.CONTEXT}]
    options = {"num_predict": 3, "num_ctx": inference.CONTEXT}
    resp = post(server, "/api/chat", chat(server, messages=long, stream=False, options=options))
    assert resp.status_code == 200
    assert resp.json()["prompt_eval_count"] <= inference.CONTEXT
    refused = chat(server, messages=long, stream=False, options=options, truncate=False)
    resp = post(server, "/api/chat", refused)
    assert resp.status_code == 400
    assert resp.json() == {"error": "the input length exceeds the context length"}


def test_openai_style_embeddings(server: inference.Server) -> None:
    body = {"model": server.embed_model, "input": ["a b", "c"]}
    resp = post(server, "/v1/embeddings", body)
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["object"] == "list"
    assert [(d["object"], d["index"]) for d in answer["data"]] == [
        ("embedding", 0),
        ("embedding", 1),
    ]
    vectors = [d["embedding"] for d in answer["data"]]
    assert len({len(v) for v in vectors}) == 1
    assert answer["usage"]["prompt_tokens"] > 0
