"""vLLM queue readings and the endpoint choice they steer."""

from __future__ import annotations

import itertools

from signalbox_api.provider import LLMProviderSpec
from signalbox_router.routing.snapshot import ProviderEntry
from signalbox_router.sources import vllm_queues
from signalbox_router.state import RouterState

METRICS = """# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a"} 3.0
vllm:num_requests_waiting{engine="0",model_name="b"} 2
vllm:num_requests_running{engine="0",model_name="a"} 7.0
"""


def test_waiting_sums_every_model() -> None:
    assert vllm_queues.waiting(METRICS) == 5.0
    assert vllm_queues.waiting("vllm:num_requests_waiting 4\n") == 4.0
    assert vllm_queues.waiting("# nothing here\n") is None


def _entry(*endpoints: str) -> ProviderEntry:
    spec = LLMProviderSpec.model_validate(
        {"type": "VLLM", "endpoint": {"service": {"name": "vllm", "port": 80}}}
    )
    return ProviderEntry(name="vllm", spec=spec, endpoints=endpoints)


def test_shortest_fresh_queue_wins_then_least_outstanding() -> None:
    state = RouterState()
    entry = _entry("http://a/v1", "http://b/v1")
    state.queue_depth["http://a/v1"] = 9.0
    state.queue_depth["http://b/v1"] = 1.0
    assert state.pick_endpoint(entry) == "http://b/v1"
    state.queue_depth.clear()
    state.started("vllm", "http://a/v1")
    assert state.pick_endpoint(entry) == "http://b/v1", "least outstanding without queue data"
    state.started("vllm", "http://b/v1")
    state.started("vllm", "http://b/v1")
    assert state.pick_endpoint(entry) == "http://a/v1"


def test_endpoints_that_tie_take_turns() -> None:
    """One request at a time (every load 0) still spreads over every pod."""
    state = RouterState()
    entry = _entry("http://a/v1", "http://b/v1", "http://c/v1")
    picks = [state.pick_endpoint(entry) for _ in range(9)]
    assert sorted(picks) == sorted(3 * ["http://a/v1", "http://b/v1", "http://c/v1"])
    assert all(x != y for x, y in itertools.pairwise(picks))
    state.started("vllm", "http://a/v1")  # a busy endpoint drops out of the turns
    assert {state.pick_endpoint(entry) for _ in range(4)} == {"http://b/v1", "http://c/v1"}
