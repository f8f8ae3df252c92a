"""Probes stay bounded in time and memory, and name what went wrong, against providers that
misbehave over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from signalbox_api.provider import LLMProviderSpec
from signalbox_operator.probing import http_probe
from signalbox_operator.status.provider_status import Refs
from signalbox_providers.outcomes import Outcome
from tests.support.misbehaving import MANY_IDS, Misbehaving
from tests.support.serving import serving


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(None)) as client:
        yield client


def spec(url: str, timeout: str = "2s") -> LLMProviderSpec:
    raw: dict[str, Any] = {
        "type": "OpenAICompatible",
        "endpoint": {"url": url},
        "healthCheck": {"timeout": timeout, "interval": "5s"},
    }
    return LLMProviderSpec.model_validate(raw)


async def run(
    http: httpx.AsyncClient, url: str, limits: http_probe.ProbeLimits, within: str = "2s"
) -> Any:
    return await http_probe.probe(http, spec(url, within), Refs(base_url=url), limits)


@pytest.mark.parametrize("behaviour", ["endless", "huge", "bomb"])
async def test_large_bodies_are_cut_off_at_the_cap(
    server: Misbehaving, http: httpx.AsyncClient, behaviour: str
) -> None:
    limits = http_probe.ProbeLimits(max_body=256 * 1024)
    tracemalloc.start()
    try:
        report = await run(http, server.url(behaviour, "p"), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.outcome == Outcome.INVALID_RESPONSE
    assert report.reason == "ResponseTooLarge"
    assert "over 262144 bytes" in report.message
    assert peak < 8 * 1024 * 1024, f"{peak} bytes held for a 256 KiB cap"


async def test_the_timeout_covers_a_body_that_drips(
    server: Misbehaving, http: httpx.AsyncClient
) -> None:
    started = asyncio.get_running_loop().time()
    report = await run(http, server.url("drip", "p"), http_probe.ProbeLimits(), within="500ms")
    assert report.outcome == Outcome.TIMEOUT
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_redirect_is_named(server: Misbehaving, http: httpx.AsyncClient) -> None:
    report = await run(http, server.url("redirect", "p"), http_probe.ProbeLimits())
    assert report.outcome == Outcome.INVALID_RESPONSE
    assert report.reason == "Redirected"
    assert report.code == 302
    assert "example.invalid" not in report.message


async def test_bad_model_ids_are_dropped_and_counted(
    server: Misbehaving, http: httpx.AsyncClient
) -> None:
    report = await run(http, server.url("badids", "p"), http_probe.ProbeLimits())
    assert report.outcome == Outcome.SUCCESS
    assert report.models is not None
    assert report.models.names == ("fine-1",)
    assert report.models.dropped == 2  # "x" * 300 and the repeat; null, "", 7 never parse
    many = await run(http, server.url("many", "p"), http_probe.ProbeLimits())
    assert many.models is not None
    assert len(many.models.names) == 1024
    assert many.models.listed == len(MANY_IDS)


async def test_large_bodies_take_turns_and_small_ones_never_wait(
    server: Misbehaving, http: httpx.AsyncClient
) -> None:
    limits = http_probe.ProbeLimits(max_body=10**9, large=asyncio.Semaphore(1))
    slow = asyncio.ensure_future(run(http, server.url("drip", "a"), limits, within="3s"))
    endless = [
        asyncio.ensure_future(run(http, server.url("endless", str(i)), limits, within="1s"))
        for i in range(3)
    ]
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    ok = await run(http, server.url("ok", "p"), limits)
    assert ok.outcome == Outcome.SUCCESS
    assert asyncio.get_running_loop().time() - started < 0.5
    reports = await asyncio.gather(*endless)
    assert all(r.outcome == Outcome.TIMEOUT for r in reports)
    slow.cancel()


async def test_a_key_httpx_cannot_send_is_a_failure_without_the_key(
    server: Misbehaving, http: httpx.AsyncClient
) -> None:
    url = server.url("ok", "p")
    for key in ("sk-new\nline", "sk-ünïcode"):
        report = await http_probe.probe(http, spec(url), Refs(base_url=url, api_key=key))
        assert report.outcome == Outcome.BAD_REQUEST
        assert report.reason == "InvalidHeader"
        assert key not in report.message


async def test_cut_off_bodies_are_freed_without_waiting_for_the_cycle_collector(
    server: Misbehaving, http: httpx.AsyncClient
) -> None:
    limits = http_probe.ProbeLimits(max_body=1024 * 1024)
    gc.disable()
    tracemalloc.start()
    try:
        for i in range(10):
            report = await run(http, server.url("endless", str(i)), limits)
            assert report.reason == "ResponseTooLarge"
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 4 * 1024 * 1024, f"{held} bytes still held after 10 probes of a 1 MiB cap"


DEEP = b"[" * 100_000 + b"]" * 100_000  # past the JSON parser's recursion depth


@pytest.fixture
async def ollama() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A hand-made Ollama whose /api/tags and /api/show answer as ``answers`` says: "deep"
    (nested past the parser's depth), "slow" (after 3 s), "odd" (JSON of the wrong shape)."""
    answers: dict[str, Any] = {"tags": "ok", "show": "ok"}

    async def tags(_request: web.Request) -> web.StreamResponse:
        if answers["tags"] == "deep":
            return web.Response(body=DEEP, content_type="application/json")
        models = [{"name": "fast"}, {"name": "slow"}]
        return web.json_response({"models": models})

    async def show(request: web.Request) -> web.StreamResponse:
        name = (await request.json()).get("model")
        if answers["show"] == "deep":
            return web.Response(body=DEEP, content_type="application/json")
        if answers["show"] == "odd":
            return web.json_response({"model_info": [1, 2], "capabilities": 7})
        if name == "slow":
            await asyncio.sleep(3)
        return web.json_response({"model_info": {"llama.context_length": 8192}})

    app = web.Application()
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/show", show)
    async with serving(app) as url:
        yield url, answers


def _ollama(url: str) -> LLMProviderSpec:
    raw = {"type": "Ollama", "endpoint": {"url": url}, "healthCheck": {"timeout": "1s"}}
    return LLMProviderSpec.model_validate(raw)


async def test_an_answer_nested_past_the_parsers_depth_is_an_invalid_response(
    http: httpx.AsyncClient, ollama: tuple[str, dict[str, Any]]
) -> None:
    url, answers = ollama
    answers["tags"] = "deep"
    report = await http_probe.probe(http, _ollama(url), Refs(base_url=url))
    assert report.outcome == Outcome.INVALID_RESPONSE
    assert "not a model list" in report.message


@pytest.mark.parametrize("show", ["deep", "odd"])
async def test_a_model_the_provider_describes_badly_is_no_fault_of_its_health(
    http: httpx.AsyncClient, ollama: tuple[str, dict[str, Any]], show: str
) -> None:
    url, answers = ollama
    answers["show"] = show
    report = await http_probe.probe(http, _ollama(url), Refs(base_url=url))
    assert report.outcome == Outcome.SUCCESS, report.message
    assert report.models is not None
    assert report.models.names == ("fast", "slow")
    described = report.models.facts.values()
    assert all(f.context_window is None and not f.capabilities for f in described)


async def test_describing_models_has_its_own_deadline_after_the_probes(
    http: httpx.AsyncClient, ollama: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/api/show of one model takes 3 s, past the probe's 1 s timeout: the probe succeeds,
    its latency is the listing's, and the slow model is left undescribed."""
    monkeypatch.setattr(http_probe, "DESCRIBE_SECONDS", 1.5)
    url, _ = ollama
    started = asyncio.get_running_loop().time()
    report = await http_probe.probe(http, _ollama(url), Refs(base_url=url))
    assert report.outcome == Outcome.SUCCESS, report.message
    assert report.latency_ms < 1000
    assert report.models is not None
    assert report.models.facts["fast"].context_window == 8192
    assert "slow" not in report.models.facts
    assert asyncio.get_running_loop().time() - started < 2.5
