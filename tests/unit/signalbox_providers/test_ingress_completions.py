"""Legacy completions ingress: the edge check, and which provider types it is sent to."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from signalbox_api.provider import ProviderType
from signalbox_providers import dialects, ingress
from signalbox_providers.dialects.base import RequestParts
from signalbox_providers.translate import completions_to_openai


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "prompt": "x", "stream": "no"}, "stream"),
    ],
)
def test_invalid(body: dict[str, Any], param: str) -> None:
    with pytest.raises(completions_to_openai.InvalidCompletion) as caught:
        completions_to_openai.validate(body)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("ptype", "base", "url"),
    [
        (ProviderType.OPENAI, "https://api.example/v1", "https://api.example/v1/completions"),
        (ProviderType.VLLM, "http://vllm:8000/v1/", "http://vllm:8000/v1/completions"),
        (ProviderType.LOCALAI, "http://local:8080/v1", "http://local:8080/v1/completions"),
        (ProviderType.OLLAMA, "http://ollama:11434", "http://ollama:11434/v1/completions"),
    ],
)
def test_sent_where_served(ptype: ProviderType, base: str, url: str) -> None:
    dialect = ingress.for_completions(dialects.dialect(ptype))
    body = {"model": "alias", "prompt": "x", "stream": True}
    out = dialect.request(RequestParts("chat", base, body, "upstream", {}))
    assert out.url == url
    sent = orjson.loads(out.data)
    assert sent["model"] == "upstream"
    assert sent["stream_options"] == {"include_usage": True}
    assert body["model"] == "alias"  # the client's body is left alone


@pytest.mark.parametrize("ptype", [ProviderType.ANTHROPIC, ProviderType.AZURE_OPENAI])
def test_refused_where_not_served(ptype: ProviderType) -> None:
    dialect = ingress.for_completions(dialects.dialect(ptype))
    with pytest.raises(dialects.Unsupported):
        dialect.request(RequestParts("chat", "http://x", {"model": "m", "prompt": "x"}, "m", {}))


def test_answer_checked_and_metered() -> None:
    dialect = ingress.for_completions(dialects.dialect(ProviderType.VLLM))
    raw = orjson.dumps(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )
    answer = dialect.answer("chat", raw, "m")
    assert answer.body == raw
    assert answer.usage == (3, 1)
    openai.types.Completion.model_validate_json(answer.body)
    with pytest.raises(dialects.InvalidAnswer):
        dialect.answer("chat", b'{"object": "text_completion"}', "m")
