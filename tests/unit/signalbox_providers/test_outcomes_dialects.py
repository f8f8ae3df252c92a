"""Classifying provider answers, Retry-After, and each provider type's request conventions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects
from signalbox_providers.dialects import HttpCall
from signalbox_providers.outcomes import FAILURES, Outcome, classify_status, retry_after_seconds

OPENAI_MODEL_NOT_FOUND = {
    "error": {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
}
ANTHROPIC_NOT_FOUND = {
    "type": "error",
    "error": {"type": "not_found_error", "message": "model: claude-9"},
}
OLLAMA_NOT_FOUND = {"error": "model 'llama9' not found, try pulling it first"}
VLLM_NOT_FOUND = {
    "object": "error",
    "message": "The model `llama9` does not exist.",
    "type": "NotFoundError",
    "param": None,
    "code": 404,
}
OPENAI_OTHER_404 = {
    "error": {"message": "Unknown request URL", "type": "invalid_request_error", "code": None}
}


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, None, Outcome.SUCCESS),
        (201, {"id": "x"}, Outcome.SUCCESS),
        (204, None, Outcome.SUCCESS),
        (401, None, Outcome.AUTH_FAILED),
        (403, {"error": {"type": "permission_error"}}, Outcome.AUTH_FAILED),
        (429, None, Outcome.RATE_LIMITED),
        (404, OPENAI_MODEL_NOT_FOUND, Outcome.MODEL_NOT_FOUND),
        (404, ANTHROPIC_NOT_FOUND, Outcome.MODEL_NOT_FOUND),
        (404, OLLAMA_NOT_FOUND, Outcome.MODEL_NOT_FOUND),
        (404, VLLM_NOT_FOUND, Outcome.MODEL_NOT_FOUND),
        (404, {"error": {"code": 404, "message": "x"}}, Outcome.MODEL_NOT_FOUND),
        (404, None, Outcome.INVALID_RESPONSE),
        (404, "404 page not found", Outcome.INVALID_RESPONSE),
        (404, {"detail": "Not Found"}, Outcome.INVALID_RESPONSE),
        (404, OPENAI_OTHER_404, Outcome.INVALID_RESPONSE),
        (404, {"object": "list", "type": "NotFoundError"}, Outcome.INVALID_RESPONSE),
        (404, [OPENAI_MODEL_NOT_FOUND], Outcome.INVALID_RESPONSE),
        (500, None, Outcome.SERVER_ERROR),
        (502, None, Outcome.SERVER_ERROR),
        (503, {"error": {"code": "model_not_found"}}, Outcome.SERVER_ERROR),
        (529, {"type": "error", "error": {"type": "overloaded_error"}}, Outcome.SERVER_ERROR),
        (400, OPENAI_MODEL_NOT_FOUND, Outcome.BAD_REQUEST),
        (405, None, Outcome.BAD_REQUEST),
        (422, {"detail": [{"msg": "field required"}]}, Outcome.BAD_REQUEST),
    ],
)
def test_classify_status(status: int, body: Any, outcome: Outcome) -> None:
    assert classify_status(status, body) == outcome


def test_failures_are_the_provider_being_unwell() -> None:
    assert Outcome.SUCCESS not in FAILURES
    assert Outcome.RATE_LIMITED not in FAILURES
    assert Outcome.BAD_REQUEST not in FAILURES
    assert {Outcome.TIMEOUT, Outcome.CONNECT_FAILURE, Outcome.AUTH_FAILED} <= FAILURES


NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 08:27:00 +0100", 0.0),
        ("Wed, 21 Oct 2015 07:27:30 -0000", 30.0),
        ("soon", None),
        ("Wed, 99 Foo 2015", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_retry_after_date_without_now_uses_the_clock() -> None:
    got = retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT")
    assert got == 0.0  # long past


@pytest.mark.parametrize("value", ["inf", "Infinity"])
def test_retry_after_rejects_infinity(value: str) -> None:
    assert retry_after_seconds(value, NOW) is None


# -- dialects -----------------------------------------------------------------------------

KEY = "sk-test"


@pytest.mark.parametrize(
    ("ptype", "base", "opts", "url", "headers"),
    [
        (
            ProviderType.OPENAI,
            "https://api.openai.com/v1",
            None,
            "https://api.openai.com/v1/models",
            {"Authorization": f"Bearer {KEY}"},
        ),
        (
            ProviderType.OPENAI,
            "https://api.openai.com/v1/",
            None,
            "https://api.openai.com/v1/models",
            {"Authorization": f"Bearer {KEY}"},
        ),
        (
            ProviderType.OPENAI_COMPATIBLE,
            "https://openrouter.ai/api/v1",
            None,
            "https://openrouter.ai/api/v1/models",
            {"Authorization": f"Bearer {KEY}"},
        ),
        (
            ProviderType.ANTHROPIC,
            "https://api.anthropic.com/v1",
            None,
            "https://api.anthropic.com/v1/models",
            {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        ),
        (
            ProviderType.ANTHROPIC,
            "https://proxy.example:8443/anthropic/api",
            None,
            "https://proxy.example:8443/anthropic/api/v1/models",  # the proxy's prefix kept
            {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        ),
        (
            ProviderType.AZURE_OPENAI,
            "https://acme.openai.azure.com",
            {"api_version": "2024-06-01"},
            "https://acme.openai.azure.com/openai/models?api-version=2024-06-01",
            {"api-key": KEY},
        ),
        (
            ProviderType.AZURE_OPENAI,
            "https://acme.openai.azure.com/openai",
            None,
            "https://acme.openai.azure.com/openai/models?api-version=2024-10-21",
            {"api-key": KEY},
        ),
        (
            ProviderType.OLLAMA,
            "http://ollama:11434/v1",
            None,
            "http://ollama:11434/api/tags",
            {"Authorization": f"Bearer {KEY}"},
        ),
        (
            ProviderType.VLLM,
            "http://h:8000/v1",
            None,
            "http://h:8000/v1/models",
            {"Authorization": f"Bearer {KEY}"},
        ),
        (
            ProviderType.LOCALAI,
            "http://localai:8080/v1",
            None,
            "http://localai:8080/v1/models",
            {"Authorization": f"Bearer {KEY}"},
        ),
    ],
)
def test_list_models(
    ptype: ProviderType,
    base: str,
    opts: dict[str, str] | None,
    url: str,
    headers: dict[str, str],
) -> None:
    call = dialects.dialect(ptype).list_models(base, KEY, opts=opts)
    assert call == HttpCall("GET", url, headers)
    assert call.json is None


@pytest.mark.parametrize("ptype", list(ProviderType))
def test_every_type_has_a_dialect(ptype: ProviderType) -> None:
    assert dialects.dialect(ptype) is dialects.DIALECTS[ptype]


@pytest.mark.parametrize(
    ("ptype", "headers"),
    [
        (ProviderType.OPENAI, {}),
        (ProviderType.OLLAMA, {}),
        (ProviderType.AZURE_OPENAI, {}),
        (ProviderType.ANTHROPIC, {"anthropic-version": "2023-06-01"}),
    ],
)
def test_no_key_no_auth_header(ptype: ProviderType, headers: dict[str, str]) -> None:
    d = dialects.dialect(ptype)
    assert d.headers(None) == headers
    assert d.headers("") == headers
    assert d.list_models("http://h/v1", None).headers == headers


@pytest.mark.parametrize(
    ("ptype", "header", "expected"),
    [
        (ProviderType.OPENAI, "X-Api-Key", {"X-Api-Key": KEY}),
        (ProviderType.OPENAI_COMPATIBLE, "Authorization", {"Authorization": f"Bearer {KEY}"}),
        (
            ProviderType.ANTHROPIC,
            "Authorization",
            {"Authorization": KEY, "anthropic-version": "2023-06-01"},
        ),
        (
            ProviderType.AZURE_OPENAI,
            "Ocp-Apim-Subscription-Key",
            {"Ocp-Apim-Subscription-Key": KEY},
        ),
        (ProviderType.OLLAMA, "X-Proxy-Token", {"X-Proxy-Token": KEY}),
    ],
)
def test_custom_auth_header(ptype: ProviderType, header: str, expected: dict[str, str]) -> None:
    d = dialects.dialect(ptype)
    assert d.headers(KEY, header) == expected
    assert d.list_models("http://h/v1", KEY, header).headers == expected
    assert d.chat_probe("http://h/v1", "m", KEY, header).headers == expected


def test_headers_are_fresh_copies() -> None:
    d = dialects.dialect(ProviderType.ANTHROPIC)
    first = d.headers(KEY)
    first["anthropic-version"] = "tampered"
    assert d.headers(KEY)["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("ptype", "base", "urls"),
    [
        (ProviderType.VLLM, "http://h:8000/v1", ["http://h:8000/health"]),
        (ProviderType.LOCALAI, "http://localai:8080/v1", ["http://localai:8080/readyz"]),
        (ProviderType.OPENAI, "https://api.openai.com/v1", []),
        (ProviderType.OLLAMA, "http://ollama:11434", []),
        (ProviderType.ANTHROPIC, "https://api.anthropic.com", []),
    ],
)
def test_readiness(ptype: ProviderType, base: str, urls: list[str]) -> None:
    calls = dialects.dialect(ptype).readiness(base)
    assert [(c.method, c.url, dict(c.headers)) for c in calls] == [("GET", u, {}) for u in urls]


PING = [{"role": "user", "content": dialects.PROBE_PROMPT}]


@pytest.mark.parametrize(
    ("ptype", "base", "opts", "url", "body"),
    [
        (
            ProviderType.OPENAI,
            "https://api.openai.com/v1",
            None,
            "https://api.openai.com/v1/chat/completions",
            {"model": "gpt-4o-mini", "max_tokens": 1, "messages": PING},
        ),
        (
            ProviderType.VLLM,
            "http://h:8000/v1",
            None,
            "http://h:8000/v1/chat/completions",
            {"model": "gpt-4o-mini", "max_tokens": 1, "messages": PING},
        ),
        (
            ProviderType.ANTHROPIC,
            "https://api.anthropic.com/v1",
            None,
            "https://api.anthropic.com/v1/messages",
            {"model": "gpt-4o-mini", "max_tokens": 1, "messages": PING},
        ),
        (
            ProviderType.AZURE_OPENAI,
            "https://acme.openai.azure.com/",
            {"api_version": "2025-01-01-preview"},
            "https://acme.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions"
            "?api-version=2025-01-01-preview",
            {"model": "gpt-4o-mini", "max_tokens": 1, "messages": PING},
        ),
        (
            ProviderType.OLLAMA,
            "http://ollama:11434/v1",
            None,
            "http://ollama:11434/api/chat",
            {
                "model": "gpt-4o-mini",
                "stream": False,
                "options": {"num_predict": 1},
                "messages": PING,
            },
        ),
    ],
)
def test_chat_probe(
    ptype: ProviderType,
    base: str,
    opts: dict[str, str] | None,
    url: str,
    body: dict[str, Any],
) -> None:
    call = dialects.dialect(ptype).chat_probe(base, "gpt-4o-mini", KEY, opts=opts)
    assert (call.method, call.url) == ("POST", url)
    assert call.json == body
    assert call.headers == dialects.dialect(ptype).headers(KEY)


def test_ollama_probe_does_not_stream_and_has_no_max_tokens() -> None:
    body = dialects.dialect(ProviderType.OLLAMA).chat_body("llama3.1:8b")
    assert body["stream"] is False
    assert body["options"] == {"num_predict": 1}
    assert "max_tokens" not in body


@pytest.mark.parametrize(
    ("base", "root"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com"),
        ("http://h:8000/v1/", "http://h:8000"),
        ("http://[fd00::1]:8000/v1", "http://[fd00::1]:8000"),
        ("http://h", "http://h"),
        ("https://gw.corp/anthropic/v1", "https://gw.corp/anthropic"),  # a gateway's prefix
        ("https://gw.corp/anthropic/", "https://gw.corp/anthropic"),
        ("https://gw.corp/v1/ollama", "https://gw.corp/v1/ollama"),  # only a trailing version
    ],
)
def test_root_of(base: str, root: str) -> None:
    assert dialects.root_of(base) == root


@pytest.mark.parametrize(
    ("ptype", "base", "url"),
    [
        (ProviderType.ANTHROPIC, "https://gw.corp/anthropic", "https://gw.corp/anthropic/v1/messages"),
        (ProviderType.ANTHROPIC, "https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages"),
        (ProviderType.OLLAMA, "http://gw/ollama/", "http://gw/ollama/api/chat"),
        (ProviderType.AZURE_OPENAI, "https://r.openai.azure.com/openai",
         "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=v"),
        (ProviderType.AZURE_OPENAI, "https://gw/azure/",
         "https://gw/azure/openai/deployments/d/chat/completions?api-version=v"),
    ],
)  # fmt: skip
def test_a_base_urls_path_prefix_is_kept(ptype: ProviderType, base: str, url: str) -> None:
    # A provider behind a gateway at a path: the dialect's routes go under that path.
    assert dialects.dialect(ptype).url(base, "chat", "d", {"api_version": "v"}) == url


@pytest.mark.parametrize(
    ("ptype", "body", "models"),
    [
        (
            ProviderType.OPENAI,
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o", "object": "model", "owned_by": "system"},
                    {"id": "gpt-4o-mini", "object": "model"},
                    {"object": "model"},
                    "junk",
                ],
            },
            ["gpt-4o", "gpt-4o-mini"],
        ),
        (ProviderType.OPENAI, {"data": []}, []),
        (
            ProviderType.ANTHROPIC,
            {"data": [{"type": "model", "id": "claude-sonnet-4-5"}], "has_more": False},
            ["claude-sonnet-4-5"],
        ),
        (ProviderType.VLLM, {"data": [{"id": 7}, {"id": None}, {"id": ""}, {"id": "m"}]}, ["m"]),
        (
            ProviderType.OLLAMA,
            {
                "models": [
                    {"name": "llama3.1:8b", "model": "llama3.1:8b", "size": 4661224676},
                    {"name": "qwen2.5:0.5b", "model": "qwen2.5:0.5b"},
                ]
            },
            ["llama3.1:8b", "qwen2.5:0.5b"],
        ),
        (ProviderType.OLLAMA, {"models": []}, []),
    ],
)
def test_parse_models(ptype: ProviderType, body: Any, models: list[str]) -> None:
    assert dialects.dialect(ptype).parse_models(body) == models


@pytest.mark.parametrize(
    ("ptype", "body"),
    [
        (ProviderType.OPENAI, None),
        (ProviderType.OPENAI, "not json"),
        (ProviderType.OPENAI, [{"id": "gpt-4o"}]),
        (ProviderType.OPENAI, {"models": [{"name": "llama3"}]}),
        (ProviderType.OPENAI, {"data": {"id": "gpt-4o"}}),
        (ProviderType.OLLAMA, {"data": [{"id": "gpt-4o"}]}),
        (ProviderType.OLLAMA, {"models": None}),
        (ProviderType.OLLAMA, {"error": "boom"}),
    ],
)
def test_parse_models_rejects_garbage(ptype: ProviderType, body: Any) -> None:
    with pytest.raises(ValueError, match="expected a list under"):
        dialects.dialect(ptype).parse_models(body)
