"""Honest metering through the router, with the fake that follows llama.cpp's server (its streams
never carry usage, whatever ``stream_options`` asks): such a stream is metered with the router's
documented estimate (``signalbox_router.metering.estimates``), labelled as estimated, never as
0 tokens.
The same runs against the real server in test_router_real.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import RouterProcess, provider, running_fakes, running_router

PROMPT = "say something"  # 13 characters
# The fake's answer: "Hello from tiny. You said: say something", 40 characters in 7 chunks.
PROMPT_ESTIMATE = 3 + 4 + 4  # the reply, the message, 13 characters at 4 a token
COMPLETION_ESTIMATE = 10  # 40 characters at 4 a token (more than the 7 chunks)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    fake = FakeProvider("tiny", Flavor.LLAMACPP, ["tiny-chat"])
    with running_fakes(fake):
        docs = [provider("tiny", "OpenAICompatible", fake.base_url, models=["tiny-chat"])]
        folder = tmp_path_factory.mktemp("router") / "manifests"
        with running_router(folder, docs, "--no-client-auth") as r:
            yield r


def test_a_stream_without_usage_is_metered_with_the_estimate(router: RouterProcess) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="tiny-chat",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from tiny. You said: say something"
    [usage] = router.get("/v1/usage").json()["data"]
    assert (
        usage["estimated_tokens"] == usage["total_tokens"] == PROMPT_ESTIMATE + COMPLETION_ESTIMATE
    )
    labels = {"model": "tiny-chat", "provider": "tiny", "source": "estimated"}
    metric = "signalbox_router_tokens_total"
    assert router.metric(metric, **labels, direction="input") == PROMPT_ESTIMATE
    assert router.metric(metric, **labels, direction="output") == COMPLETION_ESTIMATE
    assert router.metric(metric, source="upstream", direction="output") == 0


def row(router: RouterProcess) -> dict[str, Any]:
    rows = router.get("/v1/usage").json()["data"]
    return rows[0] if rows else {"estimated_tokens": 0, "total_tokens": 0}


def test_a_plain_answer_with_usage_is_not_estimated(router: RouterProcess) -> None:
    before = row(router)
    client = openai.OpenAI(base_url=router.base_url, api_key="unused", max_retries=0)
    r = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": PROMPT}]
    )
    assert r.usage is not None
    after = row(router)
    assert after["estimated_tokens"] == before["estimated_tokens"]
    assert after["total_tokens"] - before["total_tokens"] == r.usage.total_tokens
