"""The failover loop's pure decisions: who may take another attempt, whether to go round the
candidates again, how long to back off, and what a request is told when nobody is left."""

from __future__ import annotations

import pytest

from signalbox_api.policy import Failover, Strategy
from signalbox_api.provider import Capability, LLMProviderSpec
from signalbox_providers.outcomes import Outcome
from signalbox_router.failures import BadRequest, NoEligibleProvider
from signalbox_router.forwarding import failover
from signalbox_router.routing.selection import Candidate, Route
from signalbox_router.routing.snapshot import ProviderEntry
from signalbox_router.state import RouterState

TRANSIENT = sorted(failover.TRANSIENT)
FINAL = [Outcome.AUTH_FAILED, Outcome.QUOTA_EXHAUSTED, Outcome.RATE_LIMITED, Outcome.BAD_REQUEST]


def test_an_untried_candidate_may_always_take_an_attempt() -> None:
    assert failover.may_try(None, again=False)
    assert failover.may_try(None, again=True)


@pytest.mark.parametrize("outcome", TRANSIENT)
def test_a_transient_failure_is_tried_again_once_everybody_failed(outcome: Outcome) -> None:
    assert not failover.may_try(outcome, again=False), "others first"
    assert failover.may_try(outcome, again=True)


@pytest.mark.parametrize("outcome", FINAL)
def test_a_refused_key_a_spent_quota_or_a_rate_limit_is_not_tried_again(outcome: Outcome) -> None:
    assert not failover.may_try(outcome, again=True)


def test_rounds_go_on_while_attempts_are_left_and_someone_failed_transiently() -> None:
    lone = {"ollama": Outcome.SERVER_ERROR}
    assert failover.round_again(1, 3, True, lone)
    assert not failover.round_again(3, 3, True, lone), "maxAttempts spent"
    assert not failover.round_again(1, 3, False, lone), "the last round tried nobody"
    assert not failover.round_again(1, 3, True, {"a": Outcome.AUTH_FAILED})


def test_a_spent_quota_moves_on_whatever_retry_on_says() -> None:
    assert failover.retryable(Outcome.QUOTA_EXHAUSTED, Failover(retry_on=[]))


def test_backoff_grows_is_capped_and_spreads_over_its_upper_half() -> None:
    policy = Failover.model_validate({"backoff": {"base": "100ms", "max": "1s"}})
    assert failover.backoff(policy, 2, 1.0) == pytest.approx(0.1)
    assert failover.backoff(policy, 2, 0.0) == pytest.approx(0.05)
    assert failover.backoff(policy, 4, 1.0) == pytest.approx(0.4)
    assert failover.backoff(policy, 9, 1.0) == pytest.approx(1.0)
    spread = {round(failover.backoff(policy, 3, j / 10), 3) for j in range(11)}
    assert len(spread) == 11


def _route(**fields: object) -> Route:
    base: dict[str, object] = {
        "model": "m",
        "policy": "p",
        "strategy": Strategy.PRIORITY,
        "ordered": (),
        "excluded": (),
        "failover": Failover(),
    }
    return Route(**{**base, **fields})


def test_a_request_needing_what_no_provider_offers_is_the_clients_400() -> None:
    told = failover.nothing_eligible(_route(unmet=frozenset({Capability.COMPLETIONS})))
    assert isinstance(told, BadRequest)
    assert told.status == 400
    assert "completions" in str(told)
    assert isinstance(failover.nothing_eligible(_route()), NoEligibleProvider)


def _pods(*endpoints: str) -> ProviderEntry:
    spec = LLMProviderSpec.model_validate(
        {"type": "VLLM", "endpoint": {"service": {"name": "vllm", "port": 80}}}
    )
    return ProviderEntry(name="vllm", spec=spec, endpoints=endpoints)


@pytest.mark.parametrize(
    "outcome", [Outcome.CONNECT_FAILURE, Outcome.TIMEOUT, Outcome.SERVER_ERROR]
)
def test_a_pods_failure_tries_another_ready_pod_first(outcome: Outcome) -> None:
    entry = _pods("http://a/v1", "http://b/v1")
    assert failover.another_pod(entry, ["http://a/v1"], outcome)
    assert not failover.another_pod(entry, ["http://a/v1", "http://b/v1"], outcome)
    assert not failover.another_pod(_pods("http://a/v1"), ["http://a/v1"], outcome)


@pytest.mark.parametrize(
    "outcome",
    [Outcome.AUTH_FAILED, Outcome.RATE_LIMITED, Outcome.MODEL_NOT_FOUND, Outcome.INVALID_RESPONSE],
)
def test_a_failure_that_is_not_the_pods_moves_on(outcome: Outcome) -> None:
    assert not failover.another_pod(_pods("http://a/v1", "http://b/v1"), ["http://a/v1"], outcome)


def test_an_endpoint_this_request_tried_is_picked_last() -> None:
    state = RouterState()
    entry = _pods("http://a/v1", "http://b/v1", "http://c/v1")
    for _ in range(6):
        assert state.pick_endpoint(entry, ["http://a/v1", "http://c/v1"]) == "http://b/v1"
    tried = ["http://a/v1", "http://b/v1", "http://c/v1"]
    picks = {state.pick_endpoint(entry, tried) for _ in range(6)}
    assert picks == set(tried), "all tried: they take turns again"


def test_pods_leave_an_attempt_for_each_provider_after_theirs() -> None:
    pool, cloud, other = (Candidate(n, "m", 10, 1) for n in ("pool", "cloud", "other"))
    route = _route(ordered=(pool, cloud, other))
    assert failover.later_candidates(route, pool) == 2
    assert failover.later_candidates(route, cloud) == 1
    assert failover.later_candidates(route, other) == 0
