"""Health probes of every provider type, over real HTTP against the fake provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from signalbox_api.conditions import Reason
from signalbox_api.provider import Capability, LLMProviderSpec
from signalbox_fake import FakeProvider, Flavor
from signalbox_operator.probing import http_probe
from signalbox_operator.status.provider_status import Refs
from signalbox_providers.outcomes import Outcome
from tests.support.operator import free_port

KEY = "sk-probe"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def spec(type_: str, url: str, **extra: Any) -> LLMProviderSpec:
    raw: dict[str, Any] = {
        "type": type_,
        "endpoint": {"url": url},
        "healthCheck": {"timeout": "1s", "interval": "5s"},
    }
    raw.update(extra)
    return LLMProviderSpec.model_validate(raw)


CASES = [
    ("OpenAI", Flavor.OPENAI, "/v1", ["/v1/models"]),
    ("OpenAICompatible", Flavor.OPENAI, "/v1", ["/v1/models"]),
    ("Anthropic", Flavor.ANTHROPIC, "", ["/v1/models"]),
    ("AzureOpenAI", Flavor.AZURE, "", ["/openai/models"]),
    ("Ollama", Flavor.OLLAMA, "", ["/api/tags", "/api/show", "/api/show"]),
    ("VLLM", Flavor.VLLM, "/v1", ["/health", "/v1/models"]),
    ("LocalAI", Flavor.LOCALAI, "/v1", ["/readyz", "/v1/models"]),
]


@pytest.mark.parametrize(("type_", "flavor", "suffix", "paths"), CASES, ids=[c[0] for c in CASES])
async def test_list_models_probe_of_every_type(
    http: httpx.AsyncClient, type_: str, flavor: Flavor, suffix: str, paths: list[str]
) -> None:
    async with FakeProvider("p", flavor, ["m1", "m2"]) as fake:
        fake.set_faults(api_key=KEY)
        report = await http_probe.probe(
            http, spec(type_, fake.url + suffix), Refs(base_url=fake.url + suffix, api_key=KEY)
        )
        assert report.outcome == Outcome.SUCCESS, report.message
        assert report.models is not None
        assert report.models.names == ("m1", "m2")
        assert [s.path for s in fake.seen] == paths
        assert all(s.authorized in (None, True) for s in fake.seen)


async def test_discovery_describes_each_model_once(http: httpx.AsyncClient) -> None:
    async with FakeProvider("p", Flavor.OLLAMA, ["llama3.2", "nomic-embed-text"]) as fake:
        s, refs = spec("Ollama", fake.url), Refs(base_url=fake.url)
        first = await http_probe.probe(http, s, refs)
        assert first.models is not None
        llama = first.models.facts["llama3.2"]
        assert llama.context_window == 131072
        assert Capability.TOOLS in llama.capabilities
        assert first.models.facts["nomic-embed-text"].capabilities == {Capability.EMBEDDINGS}
        before = len(fake.seen)
        again = await http_probe.probe(http, s, refs, known=first.models.facts)
        assert again.outcome == Outcome.SUCCESS
        assert [r.path for r in fake.seen][before:] == ["/api/tags"]


async def test_vllm_context_comes_from_the_list_alone(http: httpx.AsyncClient) -> None:
    async with FakeProvider("p", Flavor.VLLM, ["m1"]) as fake:
        report = await http_probe.probe(
            http, spec("VLLM", fake.url + "/v1"), Refs(base_url=fake.url + "/v1")
        )
        assert report.models is not None
        assert report.models.facts["m1"].context_window == 32768
        assert [r.path for r in fake.seen] == ["/health", "/v1/models"]


async def test_anthropic_probe_sends_version_header(http: httpx.AsyncClient) -> None:
    async with FakeProvider("a", Flavor.ANTHROPIC, ["claude"]) as fake:
        await http_probe.probe(
            http, spec("Anthropic", fake.url), Refs(base_url=fake.url, api_key=KEY)
        )
        assert {"anthropic-version", "x-api-key"} <= set(fake.seen[0].header_names)


@pytest.mark.parametrize(
    ("type_", "flavor", "suffix", "path"),
    [
        ("OpenAI", Flavor.OPENAI, "/v1", "/v1/chat/completions"),
        ("Anthropic", Flavor.ANTHROPIC, "", "/v1/messages"),
        ("Ollama", Flavor.OLLAMA, "", "/api/chat"),
        ("AzureOpenAI", Flavor.AZURE, "", "/openai/deployments/m1/chat/completions"),
    ],
)
async def test_chat_probe(
    http: httpx.AsyncClient, type_: str, flavor: Flavor, suffix: str, path: str
) -> None:
    async with FakeProvider("p", flavor, ["m1"]) as fake:
        s = spec(
            type_,
            fake.url + suffix,
            healthCheck={"mode": "ChatProbe", "probeModel": "m1", "timeout": "1s"},
        )
        report = await http_probe.probe(http, s, Refs(base_url=fake.url + suffix, api_key=KEY))
        assert report.outcome == Outcome.SUCCESS, report.message
        assert fake.seen[0].path == path
        body = fake.seen[0].body or {}
        assert body.get("max_tokens") == 1 or body.get("options") == {"num_predict": 1}


async def test_http_get_probe(http: httpx.AsyncClient) -> None:
    async with FakeProvider("p", Flavor.VLLM, ["m"]) as fake:
        s = spec("VLLM", fake.url + "/v1", healthCheck={"mode": "HTTPGet", "path": "/health"})
        report = await http_probe.probe(http, s, Refs(base_url=fake.url + "/v1"))
        assert report.outcome == Outcome.SUCCESS
        assert [x.path for x in fake.seen] == ["/health"]


@pytest.mark.parametrize(
    ("faults", "outcome", "code"),
    [
        ({"status": 503}, Outcome.SERVER_ERROR, 503),
        ({"api_key": "other"}, Outcome.AUTH_FAILED, 401),
        ({"status": 429, "retry_after": 12}, Outcome.RATE_LIMITED, 429),
        ({"hang": True}, Outcome.TIMEOUT, 0),
        ({"malformed": True}, Outcome.INVALID_RESPONSE, 0),
    ],
)
async def test_failures_are_classified(
    http: httpx.AsyncClient, faults: dict[str, Any], outcome: Outcome, code: int
) -> None:
    async with FakeProvider("p", Flavor.OPENAI, ["m"]) as fake:
        fake.set_faults(**faults)
        report = await http_probe.probe(
            http,
            # Short only where the probe must time out: elsewhere a busy machine must not.
            spec(
                "OpenAI",
                fake.base_url,
                healthCheck={"timeout": "300ms" if "hang" in faults else "5s"},
            ),
            Refs(base_url=fake.base_url, api_key=KEY),
        )
        fake.clear_faults()
    assert report.outcome == outcome
    assert report.code == code
    assert KEY not in report.message
    if outcome == Outcome.RATE_LIMITED:
        assert report.retry_after == 12


async def test_connection_refused_and_query_strings_are_not_echoed(
    http: httpx.AsyncClient,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1?key=secret-in-url"
    report = await http_probe.probe(http, spec("OpenAICompatible", url), Refs(base_url=url))
    assert report.outcome == Outcome.CONNECT_FAILURE
    assert "secret-in-url" not in report.message
    assert "connection failed" in report.message


async def test_a_host_name_that_does_not_resolve_says_so(http: httpx.AsyncClient) -> None:
    url = "http://no-such-provider.invalid/v1"  # .invalid never resolves (RFC 6761)
    report = await http_probe.probe(http, spec("OpenAICompatible", url), Refs(base_url=url))
    assert report.outcome == Outcome.CONNECT_FAILURE
    assert report.reason == Reason.NAME_NOT_RESOLVED
    assert "did not resolve" in report.message


async def test_probe_respects_its_timeout(http: httpx.AsyncClient) -> None:
    async with FakeProvider("p", Flavor.OPENAI, ["m"]) as fake:
        fake.set_faults(latency=5)
        started = asyncio.get_running_loop().time()
        report = await http_probe.probe(
            http,
            spec("OpenAI", fake.base_url, healthCheck={"timeout": "200ms"}),
            Refs(base_url=fake.base_url),
        )
        elapsed = asyncio.get_running_loop().time() - started
        fake.clear_faults()
    assert report.outcome == Outcome.TIMEOUT
    assert elapsed < 2
