"""Bounds against hostile input, without a server: JSON nesting, metric labels taken only from
declared names, and the shape of the answers the bounded protocol writes itself."""

from __future__ import annotations

import json
from typing import Any

import orjson
import prometheus_client as prom
import pytest

from signalbox_api.policy import RoutingPolicySpec
from signalbox_api.provider import LLMProviderSpec
from signalbox_router.asgi import nesting
from signalbox_router.edge import bounding
from signalbox_router.metering import metric_labels
from signalbox_router.metering.meter import Meter
from signalbox_router.metering.metric_labels import OTHER
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot


def _nested(levels: int) -> Any:
    value: Any = 0
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("[[[[", 0),
        ([], 1),
        ({}, 1),
        ([1, "x", None], 1),
        ({"a": [1, {"b": {}}], "c": []}, 4),
        ([[], [[]], [[[]]]], 4),
        (_nested(64), 64),
        (_nested(65), 65),
    ],
)
def test_depth_counts_levels_of_objects_and_arrays(value: Any, depth: int) -> None:
    assert nesting.depth(value, 100) == depth


def test_depth_stops_walking_past_the_bound() -> None:
    assert nesting.depth(_nested(5000), 64) == 65


@pytest.mark.parametrize("levels", [1, 63, 64, 65, 300, 1000])
def test_too_deep_refuses_exactly_past_the_bound(levels: int) -> None:
    raw = b"[" * levels + b"]" * levels
    assert nesting.too_deep(raw, orjson.loads(raw)) == (levels > nesting.MAX_DEPTH)


def test_brackets_inside_strings_only_cost_a_walk() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "[{" * 500}]}
    raw = orjson.dumps(body)
    assert not nesting.too_deep(raw, body)


def _provider(name: str, *models: dict[str, Any]) -> ProviderEntry:
    doc = {"type": "OpenAICompatible", "endpoint": {"url": "http://u.example"}, "models": models}
    return ProviderEntry(name, LLMProviderSpec.model_validate(doc), ("http://u.example",))


def _policy(name: str, *models: str) -> PolicyEntry:
    doc = {"models": list(models), "providers": [{"name": "p"}]}
    return PolicyEntry(name, RoutingPolicySpec.model_validate(doc))


SNAPSHOT = Snapshot(
    providers={"p": _provider("p", {"name": "gpt-4o", "aliases": ["four"]})},
    policies=(_policy("default", "chat-default", "team-*"), _policy("wide", "*-preview")),
)


@pytest.mark.parametrize(
    ("asked", "label"),
    [
        ("gpt-4o", "gpt-4o"),
        ("four", "four"),
        ("chat-default", "chat-default"),
        ("team-*", "team-*"),
        ("team-anything", "team-*"),
        ("o9-preview", "*-preview"),
        ("made-up-name", OTHER),
        ("", OTHER),
    ],
)
def test_labels_are_declared_names_globs_as_written_or_other(asked: str, label: str) -> None:
    assert metric_labels.Labels(SNAPSHOT)(asked) == label


def test_the_labels_remembered_stay_bounded() -> None:
    labels = metric_labels.Labels(SNAPSHOT)
    for i in range(20_000):
        labels(f"team-{i}" if i % 2 else f"random-{i}")
    assert len(labels.known) <= labels.declared + 4096
    assert labels("gpt-4o") == "gpt-4o"  # declared names are never forgotten
    assert labels("team-0") == "team-*"


def test_a_followed_meter_labels_only_declared_names_and_follows_changes() -> None:
    current = [SNAPSHOT]
    meter = Meter()
    meter.follow(lambda: current[0])
    for i in range(1000):
        meter.record(f"client-{i}", "p", code=200, seconds=0.01)
    meter.record("team-x", "p", code=200, seconds=0.01)
    meter.first_token("gpt-4o", "p", 0.001)
    rows = {row["model"]: row["request_count"] for row in meter.summary()["data"]}
    assert rows == {OTHER: 1000, "team-*": 1, "gpt-4o": 0}
    current[0] = Snapshot(providers=SNAPSHOT.providers, policies=(_policy("d", "client-*"),))
    meter.record("client-1", "p", code=200, seconds=0.01)
    assert {row["model"] for row in meter.summary()["data"]} >= {"client-*"}
    text = prom.generate_latest(meter.registry).decode()
    assert 'client-1"' not in text


def test_a_meter_that_follows_nothing_keeps_a_bounded_set_of_names() -> None:
    meter = Meter()
    for i in range(metric_labels.UNFOLLOWED_NAMES + 50):
        meter.record(f"m{i}", "p", code=200, seconds=0.01)
    models = {row["model"] for row in meter.summary()["data"]}
    assert len(models) == metric_labels.UNFOLLOWED_NAMES + 1
    assert OTHER in models


@pytest.mark.parametrize(
    ("status", "reason"), [(431, b"Request Header Fields Too Large"), (408, b"Request Timeout")]
)
def test_refusals_are_whole_answers_in_the_openai_shape(status: int, reason: bytes) -> None:
    raw = bounding.error_response(status, "Too much.", "some_code")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 %d %s" % (status, reason)
    assert b"connection: close" in lines
    assert b"content-length: %d" % len(body) in lines
    error = json.loads(body)["error"]
    assert error == {
        "message": "Too much.",
        "type": "invalid_request_error",
        "param": None,
        "code": "some_code",
    }


def test_each_protocol_class_carries_its_own_limits() -> None:
    small = bounding.protocol_for(bounding.ConnectionLimits(max_head_bytes=1024, max_headers=5))
    assert small.limits.max_head_bytes == 1024
    assert issubclass(small, bounding.BoundedProtocol)
    assert bounding.BoundedProtocol.limits == bounding.ConnectionLimits()
