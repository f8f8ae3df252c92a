"""The response cache (``RoutingPolicy.spec.cache``) through two real router processes that
share one real Redis, with two client API keys (tenants) and the official OpenAI SDK.

A repeated deterministic request is answered without the provider, by either router; tenants
never see each other's answers; a streamed request gets the kept answer as SSE; errors,
truncated and oversized answers are never kept; ``Cache-Control: no-cache`` skips the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.operator import wait_for
from tests.support.redis_server import RedisServer
from tests.support.router import RouterProcess, policy, provider, running_fakes

MODEL = "gpt-4o-mini"
KEYS = ("tenant-a-key", "tenant-b-key")
PRICE = {"inputPerMTok": "1000000", "outputPerMTok": "2000000"}  # 1 and 2 USD a token


@dataclass
class World:
    routers: list[RouterProcess]
    fake: FakeProvider
    redis: RedisServer

    def served(self) -> int:
        return sum(1 for s in self.fake.seen if s.path.endswith("/chat/completions"))

    def sdk(self, router: int = 0, key: str = KEYS[0]) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.routers[router].base_url, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("response-cache")
    keys = base / "keys.txt"
    keys.write_text("\n".join(KEYS) + "\n")
    redis = RedisServer(base / "redis").start()
    fake = FakeProvider("cached", Flavor.OPENAI, [MODEL])
    cache = {"ttl": "1m", "maxEntries": 3, "maxEntryBytes": 2048}
    models = [{"name": MODEL, "cost": PRICE}]
    args = ("--redis-url", redis.url, "--api-keys-file", str(keys))
    routers = [RouterProcess(base / f"r{i}", base / f"r{i}.log", args) for i in range(2)]
    try:
        with running_fakes(fake):
            docs = [
                provider("cached", "OpenAICompatible", fake.base_url, models=models),
                policy("cached", ["cached"], [{"name": "cached", "model": MODEL}], cache=cache),
                policy("plain", ["plain"], [{"name": "cached", "model": MODEL}]),
            ]
            for router in routers:
                router.write(docs)
                router.start()
            yield World(routers, fake, redis)
    finally:
        for router in routers:
            router.stop()
        redis.stop()


def ask(world: World, content: str, router: int = 0, key: str = KEYS[0], **extra: Any) -> Any:
    """A chat completion (temperature 0 unless ``extra`` says otherwise) and its headers."""
    params = {"temperature": 0, **extra}
    raw = world.sdk(router, key).chat.completions.with_raw_response.create(
        model=params.pop("model", "cached"),
        messages=[{"role": "user", "content": content}],
        **params,
    )
    return raw.parse(), raw.headers


def test_a_repeat_is_answered_from_the_cache_by_either_router(world: World) -> None:
    before = world.served()
    first, headers = ask(world, "what is a cache")
    assert headers["x-signalbox-cache"] == "miss"
    again, headers = ask(world, "what is a cache")
    assert headers["x-signalbox-cache"] == "hit"
    assert headers["x-signalbox-provider"] == "cached"
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.id == first.id
    other, headers = ask(world, "what is a cache", router=1)  # found in Redis
    assert headers["x-signalbox-cache"] == "hit"
    assert other.id == first.id
    assert world.served() == before + 1


def test_tenants_never_see_each_others_answers(world: World) -> None:
    ask(world, "tenant question")
    before = world.served()
    _, headers = ask(world, "tenant question", key=KEYS[1])
    assert headers["x-signalbox-cache"] == "miss"
    assert world.served() == before + 1


def test_tenants_are_told_apart_by_their_key_whichever_header_carries_it(world: World) -> None:
    body = {"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": "hdr"}]}

    def post(headers: dict[str, str]) -> str:
        url = world.routers[0].url + "/v1/chat/completions"
        resp = httpx.post(url, json=body, headers=headers, trust_env=False)
        assert resp.status_code == 200, resp.text
        return resp.headers["x-signalbox-cache"]

    assert post({"x-api-key": KEYS[0]}) == "miss"
    assert post({"x-api-key": KEYS[1]}) == "miss"  # another tenant: never the first one's answer
    assert post({"authorization": f"Bearer {KEYS[1]}"}) == "hit"  # the same key, another header
    assert post({"authorization": f"bearer  {KEYS[0]}"}) == "hit"


@pytest.mark.parametrize(
    ("extra", "verdict"),
    [({"temperature": 0.7}, "bypass"), ({"temperature": 0.7, "seed": 7}, "hit")],
    ids=["sampled", "seeded"],
)
def test_only_deterministic_requests_are_cached(
    world: World, extra: dict[str, Any], verdict: str
) -> None:
    ask(world, f"determinism {verdict}", **extra)
    _, headers = ask(world, f"determinism {verdict}", **extra)
    assert headers["x-signalbox-cache"] == verdict


def test_no_cache_from_the_client_goes_to_the_provider(world: World) -> None:
    ask(world, "fresh please")
    before = world.served()
    _, headers = ask(world, "fresh please", extra_headers={"Cache-Control": "no-cache"})
    assert headers["x-signalbox-cache"] == "bypass"
    assert world.served() == before + 1


def test_a_stream_is_replayed_from_the_kept_answer(world: World) -> None:
    first, _ = ask(world, "stream me")
    before = world.served()
    with world.sdk().chat.completions.with_streaming_response.create(
        model="cached",
        messages=[{"role": "user", "content": "stream me"}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        assert raw.headers["x-signalbox-cache"] == "hit"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == first.usage.total_tokens
    assert world.served() == before


def stream(world: World, content: str, router: int = 0) -> tuple[str, str]:
    """A streamed request's text and its x-signalbox-cache header."""
    with world.sdk(router).chat.completions.with_streaming_response.create(
        model="cached",
        messages=[{"role": "user", "content": content}],
        temperature=0,
        stream=True,
    ) as raw:
        chunks = list(raw.parse())
        verdict = raw.headers["x-signalbox-cache"]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), verdict


def test_a_streamed_answer_is_kept_once_it_ended_whole(world: World) -> None:
    text, verdict = stream(world, "stream first")
    assert verdict == "miss"
    before = world.served()
    plain, headers = ask(world, "stream first", router=1)  # shared through Redis
    assert headers["x-signalbox-cache"] == "hit"
    assert plain.choices[0].message.content == text
    # The client did not ask for usage; the kept answer has it all the same.
    assert plain.usage is not None
    assert plain.usage.completion_tokens > 0
    again, verdict = stream(world, "stream first")
    assert (again, verdict) == (text, "hit")
    assert world.served() == before


def test_a_stream_cut_upstream_is_not_kept(world: World) -> None:
    world.fake.set_faults(cut_stream_after=2, reply_words=20)
    try:
        with pytest.raises(openai.APIError):
            stream(world, "cut stream")
    finally:
        world.fake.clear_faults()
    _, verdict = stream(world, "cut stream")
    assert verdict == "miss"


def test_errors_truncated_and_oversized_answers_are_never_kept(world: World) -> None:
    world.fake.set_faults(status=400, times=1)  # answered as it came, never retried
    with pytest.raises(openai.BadRequestError):
        ask(world, "an error")
    _, headers = ask(world, "an error")
    assert headers["x-signalbox-cache"] == "miss"  # the error was not kept
    cut, _ = ask(world, "cut short " * 5, max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    _, headers = ask(world, "cut short " * 5, max_tokens=2)
    assert headers["x-signalbox-cache"] == "miss"
    world.fake.set_faults(reply_words=600)  # far over maxEntryBytes
    try:
        ask(world, "a long answer")
        _, headers = ask(world, "a long answer")
        assert headers["x-signalbox-cache"] == "miss"
    finally:
        world.fake.clear_faults()


def test_with_redis_away_each_router_still_caches_for_itself(world: World) -> None:
    world.redis.pause()
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    try:
        wait_for(
            lambda: (
                world.routers[0].get("/readyz", headers=auth).json()["shared_budgets"]["mode"]
                == "fallback"
            ),
            5,
            "the router to see Redis gone",
        )
        _, headers = ask(world, "while redis sleeps")
        assert headers["x-signalbox-cache"] == "miss"
        _, headers = ask(world, "while redis sleeps")
        assert headers["x-signalbox-cache"] == "hit"
    finally:
        world.redis.resume()


def test_a_policy_without_cache_says_nothing_of_it(world: World) -> None:
    _, headers = ask(world, "plain", model="plain")
    assert "x-signalbox-cache" not in headers


def test_evictions_hits_and_savings_are_reported(world: World) -> None:
    router = world.routers[0]
    for _ in range(3):  # two hits
        ask(world, "savings")
    for i in range(5):  # more than maxEntries
        ask(world, f"fill {i}")
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    metrics = router.get("/metrics", headers=auth).text
    assert _sample(metrics, 'signalbox_router_cache_evictions_total{policy="cached"}') >= 2
    hits = 'signalbox_router_cache_lookups_total{policy="cached",result="hit"}'
    assert _sample(metrics, hits) > 0
    saved = _sample(metrics, 'signalbox_router_cache_saved_tokens_total{policy="cached"}')
    usage = router.get("/v1/usage", headers=auth).json()
    cache = usage["cache"]  # this key's own savings
    assert cache["hits"] >= 2
    assert cache["saved_tokens"] > 0
    other = router.get("/v1/usage", headers={"Authorization": f"Bearer {KEYS[1]}"}).json()
    assert saved == cache["saved_tokens"] + other["cache"]["saved_tokens"], "the keys' parts"
    expected = cache["saved_prompt_tokens"] + 2 * cache["saved_completion_tokens"]
    assert float(cache["saved_cost"]["USD"]) == expected


def _sample(metrics: str, series: str) -> float:
    values = [
        float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith(series + " ")
    ]
    assert values, f"no {series} in /metrics"
    return values[0]
