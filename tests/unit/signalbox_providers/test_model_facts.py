"""Capabilities and context windows as providers report them, and how routing uses them."""

from __future__ import annotations

from typing import Any

import pytest

from signalbox_api import discovered
from signalbox_api.provider import Capability, LLMProviderSpec, LLMProviderStatus, ProviderType
from signalbox_providers import model_facts
from signalbox_providers.dialects import dialect
from signalbox_providers.model_facts import ModelFacts

C = Capability

VLLM_LIST = {
    "object": "list",
    "data": [
        {
            "id": "meta-llama/Llama-3.1-8B-Instruct",
            "object": "model",
            "created": 1,
            "owned_by": "vllm",
            "root": "meta-llama/Llama-3.1-8B-Instruct",
            "parent": None,
            "max_model_len": 32768,
            "permission": [],
        }
    ],
}
OPENROUTER_LIST = {
    "data": [
        {
            "id": "openai/gpt-4o",
            "name": "OpenAI: GPT-4o",
            "context_length": 128000,
            "architecture": {
                "modality": "text+image->text",
                "input_modalities": ["text", "image", "file"],
                "output_modalities": ["text"],
            },
            "supported_parameters": [
                "tools",
                "tool_choice",
                "response_format",
                "structured_outputs",
            ],
        },
        {"id": "plain", "created": 0},
        {"id": "weird", "context_length": -5, "supported_parameters": "tools"},
    ]
}
OLLAMA_SHOW = {
    "modelfile": "FROM llama3.2\n",
    "details": {"family": "llama"},
    "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
    "capabilities": ["completion", "tools", "insert"],
}


def test_vllm_reports_max_model_len() -> None:
    facts = dialect(ProviderType.VLLM).listed_facts(VLLM_LIST)
    assert facts == {"meta-llama/Llama-3.1-8B-Instruct": ModelFacts(frozenset(), 32768)}


def test_openrouter_metadata() -> None:
    facts = model_facts.from_listing(OPENROUTER_LIST)
    assert set(facts) == {"openai/gpt-4o"}  # entries that say nothing usable are left out
    gpt = facts["openai/gpt-4o"]
    assert gpt.context_window == 128000
    assert gpt.capabilities == {C.CHAT, C.STREAMING, C.TOOLS, C.VISION, C.JSON_MODE, C.JSON_SCHEMA}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (OLLAMA_SHOW, ModelFacts(frozenset({C.CHAT, C.STREAMING, C.TOOLS}), 131072)),
        (
            {"capabilities": ["embedding"], "model_info": {"bert.context_length": 512}},
            ModelFacts(frozenset({C.EMBEDDINGS}), 512),
        ),
        (
            {"capabilities": ["completion", "vision", "thinking"]},
            ModelFacts(frozenset({C.CHAT, C.STREAMING, C.VISION, C.REASONING}), None),
        ),
        ({"capabilities": "tools", "model_info": []}, ModelFacts()),
        ([], ModelFacts()),
        ({"model_info": {"general.architecture": "x", "x.context_length": True}}, ModelFacts()),
    ],
)
def test_ollama_show(body: Any, expected: ModelFacts) -> None:
    assert dialect(ProviderType.OLLAMA).parse_shown(body) == expected


def test_only_ollama_asks_per_model() -> None:
    call = dialect(ProviderType.OLLAMA).show_model("http://h:11434/v1", "llama3.2", None)
    assert call is not None
    assert (call.method, call.url, call.json) == (
        "POST",
        "http://h:11434/api/show",
        {"model": "llama3.2"},
    )
    assert dialect(ProviderType.OPENAI).show_model("https://x/v1", "gpt-4o", "k") is None


def spec(models: list[dict[str, Any]]) -> LLMProviderSpec:
    return LLMProviderSpec.model_validate(
        {"type": "Ollama", "endpoint": {"url": "http://h:11434"}, "models": models}
    )


STATUS = LLMProviderStatus.model_validate(
    {
        "models": [
            {"name": "llama3.2:latest", "capabilities": ["chat", "tools"], "contextWindow": 131072},
            {"name": "nomic-embed-text", "capabilities": ["embeddings"], "contextWindow": 8192},
        ]
    }
)


def test_discovered_fills_what_the_spec_leaves_out() -> None:
    s = discovered.effective(spec([{"name": "llama3.2"}, {"name": "other"}]), STATUS)
    llama = s.model("llama3.2")
    assert llama is not None
    assert llama.capabilities == [C.CHAT, C.TOOLS]
    assert llama.context_window == 131072
    other = s.model("other")
    assert other is not None
    assert other.capabilities == []


def test_the_spec_always_wins() -> None:
    declared = spec([{"name": "nomic-embed-text", "capabilities": ["chat"], "contextWindow": 100}])
    s = discovered.effective(declared, STATUS)
    m = s.model("nomic-embed-text")
    assert m is not None
    assert (m.capabilities, m.context_window) == ([C.CHAT], 100)
    assert s is declared  # nothing to add: the same object


def test_a_provider_declaring_no_models_stays_open_to_any_name() -> None:
    open_ = spec([])
    assert discovered.effective(open_, STATUS) is open_
