"""Every model request has an id and one access-log line, through real router processes.

The id is the client's ``x-request-id`` when it is a plain token, else a new one; it comes back
on the answer and names every line the router writes about the request. The access line says
what came of the request (model, policy, provider, attempts, status, tokens, cache): info when it
went well at once, a warning on a failure or a failover. With ``--log-format json`` every line,
uvicorn's own included, is one JSON object. Neither a prompt nor a key ever appears.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import (
    RouterProcess,
    policy,
    provider,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"
PROMPT = "a prompt that must never reach a log line"
CLIENT_KEY = "sk-client-key-never-logged"


@dataclass
class World:
    text: RouterProcess
    json: RouterProcess
    primary: FakeProvider
    backup: FakeProvider


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("access-log")
    primary = FakeProvider("primary", Flavor.OPENAI, [MODEL])
    backup = FakeProvider("backup", Flavor.OPENAI, [MODEL])
    with running_fakes(primary, backup):
        docs = [
            provider("primary", "OpenAICompatible", primary.base_url, models=[MODEL], priority=10),
            provider("backup", "OpenAICompatible", backup.base_url, models=[MODEL], priority=20),
            policy(
                "chat",
                [MODEL],
                ["primary", "backup"],
                failover={"backoff": {"base": "10ms", "max": "20ms"}},
            ),
            policy("cached", ["cached"], [{"name": "backup", "model": MODEL}], cache={"ttl": "1m"}),
        ]
        with (
            running_router(base / "text", docs) as text,
            running_router(base / "json", docs, "--log-format", "json") as as_json,
        ):
            yield World(text, as_json, primary, backup)


def _lines(router: RouterProcess, request_id: str) -> list[str]:
    """The router's log lines naming ``request_id``, once its access line is written."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in router.log().splitlines() if request_id in line]
        if any("signalbox_router.access" in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _access(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line.split("signalbox_router.access", 1)[1]))


def _chat(
    router: RouterProcess, model: str = MODEL, temperature: float = 1.0, **headers: str | bytes
) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": temperature,
    }
    return httpx.post(router.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_a_request_keeps_its_id_and_gets_one_info_line(world: World) -> None:
    resp = _chat(world.text, **{"x-request-id": "order-42.a:b"})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "order-42.a:b"
    asked = [s for s in world.primary.seen if s.path.endswith("/chat/completions")]
    assert asked[-1].request_id == "order-42.a:b", "the upstream is told the id too"
    lines = _lines(world.text, "order-42.a:b")
    access = [line for line in lines if "signalbox_router.access" in line]
    assert len(access) == 1, lines
    assert " INFO signalbox_router.access [order-42.a:b] " in access[0]
    usage = resp.json()["usage"]
    assert _access(access[0]) == {
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": MODEL,
        "policy": "chat",
        "provider": "primary",
        "attempts": "1",
        "status": "200",
        "duration_ms": _access(access[0])["duration_ms"],
        "tokens_in": str(usage["prompt_tokens"]),
        "tokens_out": str(usage["completion_tokens"]),
        "tokens_estimated": "False",
        "cache": "-",
    }


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "semi;colon", "caf\u00e9"])
def test_a_missing_or_unfit_id_is_replaced_by_a_new_one(world: World, given: str) -> None:
    headers = {"x-request-id": given.encode()} if given else {}
    resp = _chat(world.text, **headers)
    rid = resp.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert any("signalbox_router.access" in line for line in _lines(world.text, rid))
    asked = [s for s in world.primary.seen if s.path.endswith("/chat/completions")]
    assert asked[-1].request_id == rid, "the upstream gets the new id, never the unfit one"


def test_a_client_cannot_add_a_line_or_a_field_of_its_own(world: World) -> None:
    forged = "m x=1\n2026-01-01 00:00:00,000 WARNING signalbox_router.access [forged] status=200"
    resp = _chat(world.text, model=forged, **{"x-request-id": "forge-1"})
    assert resp.status_code == 404
    (line,) = [x for x in _lines(world.text, "forge-1") if "signalbox_router.access" in x]
    fields = _access(line)
    assert fields["model"].startswith("m\\x20x=1\\n2026-01-01")
    assert "x" not in fields
    others = [x for x in world.text.log().splitlines() if "forge-1" not in x]
    assert not any("[forged]" in x for x in others)


def test_a_failover_is_a_warning_that_names_both_tries(world: World) -> None:
    world.primary.set_faults(status=500, times=1)
    try:
        resp = _chat(world.text, **{"x-request-id": "failover-1"})
    finally:
        world.primary.clear_faults()
    assert resp.status_code == 200
    assert resp.headers["x-signalbox-provider"] == "backup"
    (line,) = [x for x in _lines(world.text, "failover-1") if "signalbox_router.access" in x]
    assert " WARNING signalbox_router.access " in line
    fields = _access(line)
    assert (fields["provider"], fields["attempts"], fields["status"]) == ("backup", "2", "200")


def test_a_refused_request_is_a_warning_with_the_status_the_client_got(world: World) -> None:
    resp = _chat(world.text, model="no-such-model", **{"x-request-id": "unknown-model"})
    assert resp.status_code == 404
    assert resp.headers["x-request-id"] == "unknown-model"
    (line,) = [x for x in _lines(world.text, "unknown-model") if "signalbox_router.access" in x]
    assert " WARNING " in line
    fields = _access(line)
    assert (fields["model"], fields["status"], fields["attempts"]) == ("no-such-model", "404", "0")
    assert fields["provider"] == "-"


def test_a_stream_is_logged_when_it_ends_with_its_tokens(world: World) -> None:
    client = openai.OpenAI(base_url=world.text.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "stream-1"},
    )
    usage = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    (line,) = [x for x in _lines(world.text, "stream-1") if "signalbox_router.access" in x]
    fields = _access(line)
    assert fields["status"] == "200"
    assert (fields["tokens_in"], fields["tokens_out"]) == (
        str(usage.prompt_tokens),
        str(usage.completion_tokens),
    )


def test_a_cached_answer_says_hit(world: World) -> None:
    first = _chat(world.text, "cached", 0, **{"x-request-id": "cache-1"})
    second = _chat(world.text, "cached", 0, **{"x-request-id": "cache-2"})
    varied = _chat(world.text, "cached", 0.7, **{"x-request-id": "cache-3"})
    assert first.status_code == second.status_code == varied.status_code == 200
    (miss,) = [x for x in _lines(world.text, "cache-1") if "signalbox_router.access" in x]
    (hit,) = [x for x in _lines(world.text, "cache-2") if "signalbox_router.access" in x]
    (bypass,) = [x for x in _lines(world.text, "cache-3") if "signalbox_router.access" in x]
    assert _access(miss)["cache"] == "miss"
    assert _access(bypass)["cache"] == "bypass"
    assert (_access(hit)["cache"], _access(hit)["attempts"]) == ("hit", "0")


def test_json_lines_carry_the_request_id_and_the_access_fields(world: World) -> None:
    resp = _chat(world.json, **{"x-request-id": "json-1"})
    assert resp.status_code == 200
    _lines(world.json, "json-1")
    records: list[dict[str, Any]] = [json.loads(line) for line in world.json.log().splitlines()]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    (access,) = [
        r for r in records if r["request_id"] == "json-1" and r["logger"].endswith("access")
    ]
    assert (access["level"], access["status"], access["provider"]) == ("INFO", 200, "primary")
    assert (access["model"], access["attempts"]) == (MODEL, 1)
    assert any(r["logger"].startswith("uvicorn") for r in records), "uvicorn's lines, in JSON"


def test_no_prompt_or_key_reaches_a_log_line(world: World) -> None:
    _chat(world.text, **{"x-request-id": "secret-1", "authorization": f"Bearer {CLIENT_KEY}"})
    _lines(world.text, "secret-1")
    for router in (world.text, world.json):
        log = router.log()
        assert PROMPT not in log
        assert CLIENT_KEY not in log


def test_every_answer_is_counted_under_the_status_the_client_got(world: World) -> None:
    labels = {"route": "/v1/chat/completions", "code": "404"}
    before = world.text.metric("signalbox_router_responses_total", **labels)
    for _ in range(3):  # no provider, no attempt: only the client's answer counts them
        assert _chat(world.text, model="no-such-model").status_code == 404
    assert world.text.metric("signalbox_router_responses_total", **labels) == before + 3
