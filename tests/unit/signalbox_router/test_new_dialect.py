"""Adding a provider type is one dialect: a dialect the router has never heard of, registered in
this test alone, is routed by the chat route and, through a client API's translation pair, by
the Messages route, with no caller asking which type it is.

The made-up API: ``POST {root}/shout`` with ``{"m": model, "say": text}``, keyed by
``X-Shout-Key``, answering ``{"reply": text, "used": [prompt, completion]}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from aiohttp import web

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects
from signalbox_providers.dialects import Answer, Dialect, Kind, Outbound, RequestParts
from signalbox_router.edge.router_app import RouterApp
from signalbox_router.forwarding import exchange
from signalbox_router.forwarding.failover import Forwarder
from signalbox_router.sources import manifests
from signalbox_router.state import RouterState
from tests.support.router import policy, provider, secret
from tests.support.serving import serving

MODEL = "shouty-1"


@dataclass(frozen=True)
class Shouting(Dialect):
    """Everything the router needs to speak the made-up API, and nothing else."""

    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        return self.root(base_url) + "/shout"

    def request(self, parts: RequestParts) -> Outbound:
        said = parts.body["messages"][-1]["content"]
        url = self.url(parts.base_url, parts.kind, parts.model, parts.options)
        return Outbound(url, orjson.dumps({"m": parts.model, "say": said}))

    def answer(self, kind: Kind, raw: bytes, model: str) -> Answer:
        body = orjson.loads(raw)
        prompt, completion = body["used"]
        chat = {
            "id": "chatcmpl-shout",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": body["reply"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return Answer(orjson.dumps(chat), (prompt, completion))


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def shout(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"key": request.headers.get("X-Shout-Key"), **body})
        return web.json_response({"reply": body["say"].upper(), "used": [3, 2]})

    app = web.Application()
    app.router.add_post("/shout", shout)
    async with serving(app) as url:
        yield f"{url}/v1", seen


@pytest.fixture
def router(
    tmp_path: Path, upstream: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> RouterApp:
    registry = cast("dict[ProviderType, Dialect]", dialects.DIALECTS)
    monkeypatch.setitem(registry, ProviderType.LOCALAI, Shouting(auth_header="X-Shout-Key"))
    docs = [
        secret("keys", {"key": "shout-secret"}),
        provider("loud", "LocalAI", upstream[0], models=[MODEL], secret=("keys", "key")),
        policy("chat", [MODEL], ["loud"]),
    ]
    (tmp_path / "docs.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    state = RouterState()
    state.snapshot = manifests.load(tmp_path)
    return RouterApp(state)


async def _post(app: RouterApp, path: str, body: dict[str, Any]) -> httpx.Response:
    async with exchange.session() as session:
        app.forwarder = Forwarder(session, app.state)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            return await client.post(path, json=body)


async def test_the_chat_route_speaks_the_new_dialect(
    router: RouterApp, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    resp = await _post(router, "/v1/chat/completions", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "HELLO"
    assert resp.headers["x-signalbox-provider"] == "loud"
    assert upstream[1] == [{"key": "shout-secret", "m": MODEL, "say": "hello"}]
    row = router.state.meter.summary()["data"][0]
    assert (row["provider"], row["total_tokens"], row["estimated_tokens"]) == ("loud", 5, 0)


async def test_a_messages_client_reaches_it_through_the_chat_translation(
    router: RouterApp, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    body = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    resp = await _post(router, "/v1/messages", body)
    assert resp.status_code == 200, resp.text
    message = resp.json()
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "HI"}]
    assert message["usage"]["output_tokens"] == 2
    assert upstream[1][0]["say"] == "hi"
