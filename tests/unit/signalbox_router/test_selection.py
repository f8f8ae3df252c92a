"""Pure tests of the router's decisions: policy lookup, filtering, strategies and priority groups
(``selection``), request checks and needs (``inspection``) and the local breaker (``breaker``).

Snapshots are built by hand; views are plain ``LocalView`` objects; the breaker gets its time
passed in.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from signalbox_api.policy import Failover, RoutingPolicySpec, Strategy
from signalbox_api.provider import Capability, LLMProviderSpec
from signalbox_providers.dialects import Kind
from signalbox_router.edge import openai_request
from signalbox_router.failures import UnknownModel
from signalbox_router.routing import selection, snapshot
from signalbox_router.routing.selection import Candidate, LocalView, Needs
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot

ALL_CAPS = ["chat", "streaming", "tools", "vision", "jsonMode", "jsonSchema"]
CHAT = frozenset({Capability.CHAT})


def entry(
    name: str,
    *models: str | dict[str, Any],
    ptype: str = "OpenAICompatible",
    url: str | None = "http://upstream.example/v1",
    ready: bool | None = None,
    reason: str = "",
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> ProviderEntry:
    doc: dict[str, Any] = {
        "type": ptype,
        "endpoint": {"url": url or "http://unused.example"},
        "models": [{"name": m} if isinstance(m, str) else m for m in models],
        **spec,
    }
    return ProviderEntry(
        name=name,
        spec=LLMProviderSpec.model_validate(doc),
        endpoints=(url,) if url else (),
        labels=dict(labels or {}),
        ready=ready,
        reason=reason,
    )


def pol(
    name: str,
    models: list[str],
    providers: list[str | dict[str, Any]] | None = None,
    created: str = "",
    **spec: Any,
) -> PolicyEntry:
    doc: dict[str, Any] = {"models": models, **spec}
    if providers is not None:
        doc["providers"] = [{"name": p} if isinstance(p, str) else p for p in providers]
    return PolicyEntry(name, RoutingPolicySpec.model_validate(doc), created=created)


def snap(*entries: ProviderEntry, policies: tuple[PolicyEntry, ...] = ()) -> Snapshot:
    return Snapshot(providers={e.name: e for e in entries}, policies=policies)


def route(
    model: str, s: Snapshot, view: LocalView | None = None, needs: Needs | None = None
) -> selection.Route:
    return selection.route(model, needs or Needs(CHAT), s, view or LocalView())


def names(r: selection.Route) -> list[str]:
    return [c.provider for c in r.ordered]


def excluded(r: selection.Route) -> dict[str, str]:
    return {e.provider: e.reason for e in r.excluded}


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def cand(name: str, priority: int = 1, weight: int = 1, cost: str | None = None) -> Candidate:
    return Candidate(name, "m", priority, weight, Decimal(cost) if cost is not None else None)


# -- find_policy ---------------------------------------------------------------------------------


def test_an_exact_name_beats_an_older_glob() -> None:
    glob = pol("glob", ["gpt-*"], ["a"], created="2024-01-01T00:00:00Z")
    exact = pol("exact", ["gpt-4o"], ["a"], created="2025-01-01T00:00:00Z")
    assert selection.find_policy("gpt-4o", [glob, exact]) is exact
    assert selection.find_policy("gpt-4o-mini", [glob, exact]) is glob


@pytest.mark.parametrize("kind", ["exact", "glob"])
def test_the_oldest_policy_wins_a_conflict(kind: str) -> None:
    pattern = "chat" if kind == "exact" else "ch*"
    young = pol("aaa-young", [pattern], ["a"], created="2025-06-01T00:00:00Z")
    old = pol("zzz-old", [pattern], ["a"], created="2024-06-01T00:00:00Z")
    assert selection.find_policy("chat", [young, old]) is old
    assert selection.find_policy("chat", [old, young]) is old


def test_equal_ages_fall_back_to_the_name() -> None:
    b = pol("b", ["chat"], ["a"], created="same")
    a = pol("a", ["chat"], ["a"], created="same")
    assert selection.find_policy("chat", [b, a]) is a


@pytest.mark.parametrize(
    ("pattern", "model", "matches"),
    [
        ("gpt-4o*", "gpt-4o-mini", True),
        ("gpt-4o*", "GPT-4o-mini", False),  # case matters
        ("llama3.?:8b", "llama3.1:8b", True),
        ("llama3.?:8b", "llama3.10:8b", False),
        ("claude-[sh]*", "claude-haiku-4-5", True),
        ("claude-[sh]*", "claude-opus-4", False),
        ("chat-default", "chat-default-2", False),
    ],
)
def test_glob_patterns(pattern: str, model: str, matches: bool) -> None:
    found = selection.find_policy(model, [pol("p", [pattern], ["a"])])
    assert (found is not None) is matches


def test_no_policy_for_an_unmatched_name() -> None:
    assert selection.find_policy("x", [pol("p", ["y", "z*"], ["a"])]) is None


# -- direct routes (no policy) and policy routes ------------------------------------------------


def test_direct_route_by_model_name_or_alias() -> None:
    s = snap(
        entry("b", {"name": "gpt-4o-mini", "aliases": ["mini"]}),
        entry("a", "gpt-4o-mini"),
        entry("c", "other-model"),
        entry("d"),  # declares nothing: never a direct route
    )
    by_name = route("gpt-4o-mini", s, LocalView(turn=0))
    assert by_name.policy is None
    assert by_name.strategy == Strategy.PRIORITY
    assert by_name.failover == Failover()
    assert names(by_name) == ["a", "b"]
    by_alias = route("mini", s)
    assert names(by_alias) == ["b"]
    assert by_alias.ordered[0].model == "gpt-4o-mini"  # the upstream gets its own name
    with pytest.raises(UnknownModel):
        route("not-declared-anywhere", s)


def test_policy_refs_override_model_priority_and_weight() -> None:
    s = snap(
        entry("a", "small", priority=5, weight=1),
        entry("b", "large", priority=5, weight=1),
        policies=(
            pol(
                "p",
                ["chat"],
                [
                    {"name": "a", "model": "small", "priority": 2, "weight": 7},
                    {"name": "b", "model": "large", "priority": 1, "weight": 3},
                ],
            ),
        ),
    )
    r = route("chat", s)
    assert r.policy == "p"
    assert [(c.provider, c.model, c.priority, c.weight) for c in r.ordered] == [
        ("b", "large", 1, 3),
        ("a", "small", 2, 7),
    ]


def test_policy_providers_that_cannot_serve_the_name_are_excluded() -> None:
    s = snap(
        entry("declares-it", "chat"),
        entry("passes-through"),  # declares nothing: the name goes upstream as is
        entry("embeds-only", {"name": "e5", "capabilities": ["embeddings"]}),
        policies=(pol("p", ["chat"], ["declares-it", "passes-through", "embeds-only", "gone"]),),
    )
    r = route("chat", s)
    assert sorted(names(r)) == ["declares-it", "passes-through"]
    assert {c.provider: c.model for c in r.ordered} == {
        "declares-it": "chat",
        "passes-through": "chat",
    }
    # It declares models, but none by that name and none with what a chat needs.
    assert excluded(r) == {"embeds-only": "CapabilityMismatch", "gone": "NotFound"}


def test_a_virtual_policy_name_maps_to_a_model_with_the_needed_capabilities() -> None:
    s = snap(
        entry(
            "a",
            {"name": "e5", "capabilities": ["embeddings"]},
            {"name": "llama", "capabilities": ["chat", "streaming"]},
        ),
        policies=(pol("p", ["house-model"], ["a"]),),
    )
    assert route("house-model", s).ordered[0].model == "llama"
    embeds = route("house-model", s, needs=Needs(frozenset({Capability.EMBEDDINGS})))
    assert embeds.ordered[0].model == "e5"
    # A model that declares nothing takes any request, after one that declares what it needs.
    vague_first = snap(
        entry("a", "vague", {"name": "e5", "capabilities": ["embeddings"]}),
        policies=(pol("p", ["house-model"], ["a"]),),
    )
    assert route("house-model", vague_first).ordered[0].model == "vague"
    embeds = route("house-model", vague_first, needs=Needs(frozenset({Capability.EMBEDDINGS})))
    assert embeds.ordered[0].model == "e5"


def test_provider_selector_picks_by_label() -> None:
    s = snap(
        entry("a", labels={"tier": "gold"}),
        entry("b", labels={"tier": "silver"}),
        entry("c", labels={"tier": "gold", "zone": "eu"}),
        policies=(pol("p", ["chat"], providerSelector={"matchLabels": {"tier": "gold"}}),),
    )
    assert sorted(names(route("chat", s))) == ["a", "c"]


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "capability"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        ],
                    }
                ]
            },
            "vision",
        ),
        ({"response_format": {"type": "json_object"}}, "jsonMode"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "jsonSchema"),
        ({"stream": True}, "streaming"),
    ],
    ids=["tools", "image", "json_object", "json_schema", "stream"],
)
def test_requests_go_only_to_models_with_what_they_need(
    extra: dict[str, Any], capability: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    needs = openai_request.needs(openai_request.validate(body, "chat"), "chat")
    assert Capability(capability) in needs.capabilities
    lacking = [c for c in ALL_CAPS if c != capability]
    s = snap(
        entry("full", {"name": "m", "capabilities": ALL_CAPS}),
        entry("lacking", {"name": "m", "capabilities": lacking}),
        entry("undeclared", {"name": "m"}),  # no capabilities declared: anything goes
    )
    r = route("m", s, needs=needs)
    assert sorted(names(r)) == ["full", "undeclared"]
    assert excluded(r) == {"lacking": "CapabilityMismatch"}
    # The same provider is fine for a request that does not need it.
    plain = openai_request.needs(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "chat"
    )
    assert capability not in {c.value for c in plain.capabilities}
    assert "lacking" in names(route("m", s, needs=plain))


def test_policy_requirements_add_capabilities() -> None:
    s = snap(
        entry("a", {"name": "m", "capabilities": ["chat"]}),
        entry("b", {"name": "m", "capabilities": ["chat", "tools"]}),
        policies=(pol("p", ["m"], ["a", "b"], requirements={"capabilities": ["tools"]}),),
    )
    r = route("m", s)
    assert names(r) == ["b"]
    assert excluded(r) == {"a": "CapabilityMismatch"}


def test_context_window_must_hold_the_prompt_and_the_policy_minimum() -> None:
    s = snap(
        entry("small", {"name": "m", "contextWindow": 1000}),
        entry("large", {"name": "m", "contextWindow": 100_000}),
        entry("unknown", {"name": "m"}),
    )
    assert sorted(names(route("m", s, needs=Needs(CHAT, prompt_tokens=999)))) == [
        "large",
        "small",
        "unknown",
    ]
    big = route("m", s, needs=Needs(CHAT, prompt_tokens=1001))
    assert sorted(names(big)) == ["large", "unknown"]
    assert excluded(big) == {"small": "ContextTooSmall"}
    # The prompt size comes from the messages, about four characters a token.
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 8000}]}
    assert "small" not in names(route("m", s, needs=openai_request.needs(body, "chat")))

    with_minimum = snap(
        *s.providers.values(),
        policies=(pol("p", ["m"], ["small", "large"], requirements={"minContextWindow": 32000}),),
    )
    r = route("m", with_minimum)
    assert names(r) == ["large"]
    assert excluded(r) == {"small": "CapabilityMismatch"}  # the policy's requirement


@pytest.mark.parametrize(
    ("tiers", "allowed"),
    [(["Local"], ["ollama", "pinned-local"]), (["Cloud"], ["openai"]), ([], None)],
)
def test_tiers(tiers: list[str], allowed: list[str] | None) -> None:
    s = snap(
        entry("openai", ptype="OpenAI", url="https://api.openai.com/v1", auth=_AUTH),
        entry("ollama", ptype="Ollama", url="http://localhost:11434"),
        entry(
            "pinned-local", ptype="OpenAI", url="https://gw.internal/v1", auth=_AUTH, tier="Local"
        ),
        policies=(
            pol("p", ["m"], ["openai", "ollama", "pinned-local"], requirements={"tiers": tiers}),
        ),
    )
    r = route("m", s)
    everyone = ["ollama", "openai", "pinned-local"]
    assert sorted(names(r)) == (allowed or everyone)
    assert set(excluded(r).values()) <= {"CapabilityMismatch"}
    assert sorted([*names(r), *excluded(r)]) == everyone


_AUTH = {"secretRef": {"name": "keys", "key": "k"}}


def test_unusable_providers_are_excluded_with_their_reason() -> None:
    s = snap(
        entry("ok"),
        entry("unknown-health", ready=None),  # manifests mode: no operator verdict
        entry("not-ready", ready=False, reason="Unhealthy"),
        entry("not-ready-bare", ready=False),
        entry("probe-failed", ready=False, reason="ProbeFailed"),
        entry("circuit-open", ready=False, reason="CircuitOpen"),
        entry("limited", ready=False, reason="RateLimited"),
        entry("suspended", suspend=True),
        entry("no-endpoints", url=None),
        entry("breaker-open"),
        entry("cooling"),
        policies=(
            pol(
                "p",
                ["m"],
                [
                    "ok",
                    "unknown-health",
                    "not-ready",
                    "not-ready-bare",
                    "probe-failed",
                    "circuit-open",
                    "limited",
                    "suspended",
                    "no-endpoints",
                    "breaker-open",
                    "cooling",
                ],
            ),
        ),
    )
    view = LocalView(breaker_open=lambda n: n == "breaker-open", cooling=lambda n: n == "cooling")
    r = route("m", s, view)
    assert sorted(names(r)) == ["ok", "unknown-health"]
    assert excluded(r) == {
        "not-ready": "Unhealthy",
        "not-ready-bare": "Unhealthy",
        "probe-failed": "Unhealthy",  # the rule's reasons only, as in policy status
        "circuit-open": "CircuitOpen",
        "limited": "RateLimited",
        "suspended": "Suspended",
        "no-endpoints": "NoEndpoints",
        "breaker-open": "BreakerOpen",
        "cooling": "RateLimited",
    }


def test_the_view_is_read_per_request() -> None:
    s = snap(entry("a", "m"), entry("b", "m", priority=200))
    assert names(route("m", s)) == ["a", "b"]
    assert names(route("m", s, LocalView(breaker_open=lambda n: n == "a"))) == ["b"]
    assert names(route("m", s)) == ["a", "b"]


# -- strategies and priority groups -------------------------------------------------------------


@pytest.mark.parametrize("strategy", [Strategy.PRIORITY, Strategy.ROUND_ROBIN])
def test_priority_and_round_robin_rotate_within_a_priority_group(strategy: Strategy) -> None:
    group = [cand("c"), cand("a"), cand("b"), cand("z", priority=2), cand("y", priority=2)]
    orders = [
        [c.provider for c in selection.order(group, strategy, LocalView(turn=t))] for t in range(4)
    ]
    assert orders == [
        ["a", "b", "c", "y", "z"],
        ["b", "c", "a", "z", "y"],
        ["c", "a", "b", "y", "z"],
        ["a", "b", "c", "z", "y"],
    ]


def test_weighted_follows_the_weights() -> None:
    group = [cand("heavy", weight=3), cand("light", weight=1), cand("never", weight=0)]
    view = LocalView(rng=seeded(1234))
    firsts = Counter(
        selection.order(group, Strategy.WEIGHTED, view)[0].provider for _ in range(4000)
    )
    assert firsts["never"] == 0
    assert abs(firsts["heavy"] / 4000 - 0.75) < 0.03
    assert abs(firsts["light"] / 4000 - 0.25) < 0.03
    # Every provider is still in the list, for failover; weight 0 comes last.
    full = selection.order(group, Strategy.WEIGHTED, view)
    assert sorted(c.provider for c in full) == ["heavy", "light", "never"]
    assert full[-1].provider == "never"


def test_weighted_is_reproducible_with_a_seed_and_handles_all_zero() -> None:
    group = [cand(n, weight=w) for n, w in (("a", 1), ("b", 2), ("c", 5))]

    def draw(seed: int) -> list[list[str]]:
        view = LocalView(rng=seeded(seed))
        return [
            [c.provider for c in selection.order(group, Strategy.WEIGHTED, view)] for _ in range(20)
        ]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    zeros = [cand("b", weight=0), cand("a", weight=0)]
    assert [c.provider for c in selection.order(zeros, Strategy.WEIGHTED, LocalView())] == [
        "a",
        "b",
    ]


def test_health_based_prefers_success_then_speed() -> None:
    group = [cand("flaky"), cand("slow"), cand("fast"), cand("new")]
    view = LocalView(
        success_rate={"flaky": 0.5, "slow": 1.0, "fast": 1.0},
        latency={"flaky": 0.01, "slow": 2.0, "fast": 0.1},
    )
    order = [c.provider for c in selection.order(group, Strategy.HEALTH_BASED, view)]
    assert order == ["new", "fast", "slow", "flaky"]  # unknown: as good as it gets


def test_least_recently_used_goes_first() -> None:
    group = [cand("a"), cand("b"), cand("c")]
    view = LocalView(last_used={"a": 30.0, "b": 10.0})
    assert [c.provider for c in selection.order(group, Strategy.LEAST_RECENTLY_USED, view)] == [
        "c",  # never used
        "b",
        "a",
    ]


def test_least_loaded_goes_first_and_weight_breaks_ties() -> None:
    group = [cand("busy"), cand("idle-light", weight=1), cand("idle-heavy", weight=5)]
    view = LocalView(in_flight={"busy": 3})
    assert [c.provider for c in selection.order(group, Strategy.LEAST_LOADED, view)] == [
        "idle-heavy",
        "idle-light",
        "busy",
    ]


def test_lowest_cost_goes_first_and_unpriced_last() -> None:
    s = snap(
        entry("dear", _priced("5.00", "15.00")),
        entry("cheap", _priced("0.10", "0.40")),
        entry("unpriced", "m"),
        entry("mid", _priced("1.00", "1.00")),
        policies=(pol("p", ["m"], ["dear", "cheap", "unpriced", "mid"], strategy="LowestCost"),),
    )
    r = route("m", s)
    assert r.strategy == Strategy.LOWEST_COST
    assert names(r) == ["cheap", "mid", "dear", "unpriced"]
    assert r.ordered[0].cost == Decimal("0.50")


def _priced(inp: str, out: str) -> dict[str, Any]:
    return {"name": "m", "cost": {"inputPerMTok": inp, "outputPerMTok": out}}


VIEWS: dict[Strategy, LocalView] = {
    Strategy.PRIORITY: LocalView(turn=1),
    Strategy.ROUND_ROBIN: LocalView(turn=2),
    Strategy.WEIGHTED: LocalView(rng=seeded(3)),
    # Each view prefers the lower group's worst member, which must still not jump the queue.
    Strategy.HEALTH_BASED: LocalView(success_rate={"p1-a": 0.1, "p1-b": 0.2, "p2-a": 1.0}),
    Strategy.LEAST_RECENTLY_USED: LocalView(last_used={"p1-a": 9.0, "p1-b": 8.0, "p2-a": 0.0}),
    Strategy.LEAST_LOADED: LocalView(in_flight={"p1-a": 9, "p1-b": 8}),
    Strategy.LOWEST_COST: LocalView(),
}


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_keeps_priority_groups_in_order(strategy: Strategy) -> None:
    group = [
        cand("p2-a", priority=2, cost="0.01"),
        cand("p1-a", priority=1, cost="9"),
        cand("p3-a", priority=3, cost="0"),
        cand("p1-b", priority=1, cost="8"),
        cand("p2-b", priority=2, cost="0.02"),
    ]
    order = selection.order(group, strategy, VIEWS[strategy])
    assert [c.priority for c in order] == [1, 1, 2, 2, 3]
    assert sorted(c.provider for c in order) == sorted(c.provider for c in group)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_an_excluded_group_degrades_to_the_next(strategy: Strategy) -> None:
    s = snap(
        entry("primary-a", "m", priority=1),
        entry("primary-b", "m", priority=1),
        entry("backup", "m", priority=2),
        entry("last-resort", "m", priority=3),
        policies=(
            pol(
                "p",
                ["m"],
                ["primary-a", "primary-b", "backup", "last-resort"],
                strategy=strategy.value,
            ),
        ),
    )
    view = LocalView(breaker_open=lambda n: n.startswith("primary"))
    view.rng.seed(5)
    r = route("m", s, view)
    assert names(r) == ["backup", "last-resort"]
    assert excluded(r) == {"primary-a": "BreakerOpen", "primary-b": "BreakerOpen"}
    assert names(route("m", s, LocalView(turn=0)))[2:] == ["backup", "last-resort"]


# -- openai_request.validate and openai_request.needs ----------------------------------------

MSGS = [{"role": "user", "content": "hi"}]
VALID: list[tuple[str, Any, Kind]] = [
    ("chat", {"model": "m", "messages": MSGS}, "chat"),
    (
        "every role",
        {
            "model": "m",
            "messages": [
                {"role": r}
                for r in ("system", "developer", "user", "assistant", "tool", "function")
            ],
        },
        "chat",
    ),
    ("stream", {"model": "m", "messages": MSGS, "stream": False}, "chat"),
    ("max_tokens", {"model": "m", "messages": MSGS, "max_tokens": 1}, "chat"),
    ("null max_tokens", {"model": "m", "messages": MSGS, "max_tokens": None}, "chat"),
    ("tools", {"model": "m", "messages": MSGS, "tools": []}, "chat"),
    ("stop string", {"model": "m", "messages": MSGS, "stop": "END"}, "chat"),
    ("stop list", {"model": "m", "messages": MSGS, "stop": ["a", "b"]}, "chat"),
    ("stream_options", {"model": "m", "messages": MSGS, "stream_options": {}}, "chat"),
    ("embedding string", {"model": "e", "input": "x"}, "embeddings"),
    ("embedding list", {"model": "e", "input": ["x", "y"]}, "embeddings"),
    ("embedding tokens", {"model": "e", "input": [1, 2, 3]}, "embeddings"),
]
INVALID: list[tuple[str, Any, Kind, str | None]] = [
    ("not an object", [], "chat", None),
    ("null", None, "chat", None),
    ("no model", {"messages": MSGS}, "chat", "model"),
    ("empty model", {"model": "", "messages": MSGS}, "chat", "model"),
    ("model not a string", {"model": ["m"], "messages": MSGS}, "chat", "model"),
    ("no messages", {"model": "m"}, "chat", "messages"),
    ("empty messages", {"model": "m", "messages": []}, "chat", "messages"),
    ("messages an object", {"model": "m", "messages": {"role": "user"}}, "chat", "messages"),
    ("bad role", {"model": "m", "messages": [{"role": "bot"}]}, "chat", "messages[0].role"),
    ("no role", {"model": "m", "messages": [*MSGS, {}]}, "chat", "messages[1].role"),
    ("stream a string", {"model": "m", "messages": MSGS, "stream": "yes"}, "chat", "stream"),
    ("stream a number", {"model": "m", "messages": MSGS, "stream": 1}, "chat", "stream"),
    ("max_tokens 0", {"model": "m", "messages": MSGS, "max_tokens": 0}, "chat", "max_tokens"),
    ("max_tokens bool", {"model": "m", "messages": MSGS, "max_tokens": True}, "chat", "max_tokens"),
    (
        "max_completion_tokens",
        {"model": "m", "messages": MSGS, "max_completion_tokens": -1},
        "chat",
        "max_completion_tokens",
    ),
    ("tools an object", {"model": "m", "messages": MSGS, "tools": {}}, "chat", "tools"),
    ("stop a number", {"model": "m", "messages": MSGS, "stop": 3}, "chat", "stop"),
    ("stop mixed", {"model": "m", "messages": MSGS, "stop": ["a", None]}, "chat", "stop"),
    (
        "stream_options a string",
        {"model": "m", "messages": MSGS, "stream": True, "stream_options": "x"},
        "chat",
        "stream_options",
    ),
    ("no input", {"model": "e"}, "embeddings", "input"),
    ("empty input", {"model": "e", "input": ""}, "embeddings", "input"),
    ("input a number", {"model": "e", "input": 3}, "embeddings", "input"),
    ("embedding stream", {"model": "e", "input": "x", "stream": "no"}, "embeddings", "stream"),
]


@pytest.mark.parametrize(("body", "kind"), [(b, k) for _, b, k in VALID], ids=[v[0] for v in VALID])
def test_validate_accepts(body: Any, kind: Kind) -> None:
    assert openai_request.validate(body, kind) is body


@pytest.mark.parametrize(
    ("body", "kind", "param"), [(b, k, p) for _, b, k, p in INVALID], ids=[i[0] for i in INVALID]
)
def test_validate_refuses(body: Any, kind: Kind, param: str | None) -> None:
    with pytest.raises(openai_request.InvalidRequest) as err:
        openai_request.validate(body, kind)
    assert err.value.param == param
    assert str(err.value)


def test_needs_of_embeddings_and_of_a_plain_chat() -> None:
    embed = openai_request.needs({"model": "e", "input": ["abcd" * 10, 7, "abcd"]}, "embeddings")
    assert embed == Needs(frozenset({Capability.EMBEDDINGS}), 11)
    chat = openai_request.needs(
        {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}, "chat"
    )
    assert chat == Needs(CHAT, 10)
    text_parts = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 80}]}],
        "response_format": {"type": "text"},
        "tools": [],
    }
    assert openai_request.needs(text_parts, "chat") == Needs(CHAT, 20)


def test_needs_ignores_odd_content_parts() -> None:
    odd = [{"type": ["image_url"]}, {"type": {"x": 1}}, "just a string", {"text": 5}]
    body = {"model": "m", "messages": [{"role": "user", "content": [*odd, {"text": "abcd"}]}]}
    assert openai_request.needs(body, "chat") == Needs(CHAT, 1)
    images = {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_image"}]}]}
    assert Capability.VISION in openai_request.needs(images, "chat").capabilities


# -- the plan cache -----------------------------------------------------------------------------


def test_the_plan_cache_stays_bounded_under_random_model_names() -> None:
    s = snap(
        entry("a", {"name": "m", "aliases": ["alias"]}),
        policies=(pol("p", ["gpt-*", "chat"], ["a"]),),
    )
    rng, view, chat = seeded(99), LocalView(), Needs(CHAT)
    refused = 0
    for _ in range(100_000):  # names nothing serves: refused, and nothing is stored
        try:
            selection.route("x" + rng.randbytes(rng.randint(1, 20)).hex(), chat, s, view)
        except UnknownModel:
            refused += 1
    assert refused == 100_000
    assert len(s.plan_cache) == 0
    for name in ("m", "alias", "chat", "gpt-4o"):  # declared names and a glob match are kept
        route(name, s)
    assert len(s.plan_cache) == 4
    served = 0
    for _ in range(100_000):  # a glob admits any number of names: the cache keeps the recent
        model = "gpt-" + rng.randbytes(rng.randint(1, 20)).hex()
        served += selection.route(model, chat, s, view).ordered[0].provider == "a"
    assert served == 100_000
    assert len(s.plan_cache) == snapshot.PLAN_CACHE_SIZE
    assert s.plan_cache.get(("gpt-4o", CHAT)) is None  # pushed out by the newer names


def test_the_plan_cache_drops_the_least_recently_used() -> None:
    cache: snapshot.LruMap[str, int] = snapshot.LruMap(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2
