"""The operator against a crowd of misbehaving providers on loopback and the real API server:
bounded memory, no starvation of healthy providers, and status that never freezes."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from signalbox_fake import FakeProvider, Flavor
from tests.support import router as router_support
from tests.support.cluster import Cluster
from tests.support.misbehaving import Misbehaving
from tests.support.operator import OperatorProcess, condition, events, wait_for

CHART_MEMORY_LIMIT = 512 * 1024 * 1024


@pytest.fixture
def server() -> Iterator[Misbehaving]:
    with Misbehaving().running_in_thread() as s:
        yield s


def provider(name: str, url: str, interval: str, timeout: str, **spec: Any) -> dict[str, Any]:
    return router_support.provider(
        name,
        "OpenAICompatible",
        url,
        healthCheck={"interval": interval, "timeout": timeout, "unhealthyThreshold": 1},
        circuitBreaker={"failureThreshold": 100},  # keep probing the bad ones
        **spec,
    )


def apply_all(cluster: Cluster, namespace: str, items: list[dict[str, Any]]) -> None:
    cluster.apply(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}), namespace)


def healthy(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return condition(cluster.get("llmp", name, namespace), "Healthy")


def test_memory_and_probe_gaps_with_100_misbehaving_providers(
    cluster: Cluster, namespace: str, server: Misbehaving, tmp_path: Path
) -> None:
    bad = [("endless", 25), ("huge", 25), ("bomb", 10), ("drip", 20), ("hang", 20)]
    items = [provider(f"ok-{i}", server.url("ok", f"c{i}"), "2s", "1s") for i in range(2)]
    for behaviour, count in bad:
        slow = behaviour == "hang"  # accepts, never answers: a long timeout, as in the wild
        for i in range(count):
            items.append(
                provider(
                    f"{behaviour}-{i}",
                    server.url(behaviour, str(i)),
                    "30s" if slow else "4s",
                    "20s" if slow else "3s",
                )
            )
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
    try:
        apply_all(cluster, namespace, items)
        for i in range(2):

            def up(i: int = i) -> bool:
                return (healthy(cluster, namespace, f"ok-{i}") or {}).get("status") == "True"

            wait_for(up, 60, f"ok-{i} healthy")
        watched_from = time.monotonic()
        time.sleep(30)
        for i in range(2):
            gaps = server.gaps("ok", f"c{i}", after=watched_from)
            assert len(gaps) >= 10
            # Starved behind a misbehaving provider's probe (3 s and more), a gap would pass
            # 5 s; the margin over the 2 s interval is for a machine running other suites.
            assert max(gaps) <= 4.0, f"a healthy provider went {max(gaps):.1f}s without a probe"
        seen: dict[str, set[tuple[str, str]]] = {}
        listed = json.loads(cluster.kubectl("get", "llmp", "-n", namespace, "-o", "json").stdout)
        for obj in listed["items"]:
            c = condition(obj, "Healthy") or {}
            kind = obj["metadata"]["name"].rsplit("-", 1)[0]
            seen.setdefault(kind, set()).add((c.get("status", ""), c.get("reason", "")))
        # Large bodies take turns (a few at a time); one whose turn does not come within its
        # timeout is a Timeout. Either way each is unhealthy, and the cap is named.
        for kind in ("endless", "huge", "bomb"):
            assert seen[kind] <= {("False", "ResponseTooLarge"), ("False", "Timeout")}, kind
            assert ("False", "ResponseTooLarge") in seen[kind], kind
        assert seen["drip"] == {("False", "Timeout")}
        peak = op.peak_rss()
        assert peak < CHART_MEMORY_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
        print(f"peak RSS {peak / 2**20:.0f} MiB")
    finally:
        op.stop()


def test_status_never_freezes_on_what_providers_and_secrets_hold(
    cluster: Cluster, namespace: str, server: Misbehaving, tmp_path: Path
) -> None:
    newline_key = f"sk-{uuid.uuid4().hex}\nsecond-line"
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "binary"},
            "data": {"api-key": base64.b64encode(b"sk-\xff\xfe\x00bytes").decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "newline"},
            "stringData": {"api-key": newline_key},
        },
    ]
    auth = {"auth": {"secretRef": {"name": "binary", "key": "api-key"}}}
    items = [
        provider("badids", server.url("badids", "a"), "2s", "1s", models=[{"name": "fine-1"}]),
        provider("many", server.url("many", "a"), "2s", "1s"),
        provider("redirect", server.url("redirect", "a"), "1s", "1s"),
        provider("binary", server.url("ok", "b"), "2s", "1s", **auth),
        provider(
            "newline",
            server.url("ok", "n"),
            "2s",
            "1s",
            auth={"secretRef": {"name": "newline", "key": "api-key"}},
        ),
    ]
    typo = provider("typo", server.url("ok", "t"), "2s", "1s")
    typo["metadata"]["annotations"] = {"signalbox.dev/circuit": "force-opn"}
    items.append(typo)
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log", extra=["-v"]).start()
    try:
        apply_all(cluster, namespace, [*secrets, *items])

        def cond(name: str, type_: str) -> dict[str, Any]:
            return condition(cluster.get("llmp", name, namespace), type_) or {}

        wait_for(lambda: cond("badids", "Ready").get("status") == "True", 30, "badids Ready")
        assert "listed model ids were dropped" in cond("badids", "Healthy")["message"]
        wait_for(lambda: cond("many", "Ready").get("status") == "True", 30, "many Ready")
        many = cluster.get("llmp", "many", namespace)
        assert len(many["status"]["models"]) == 1024
        assert "status.models shows 1024" in condition(many, "Healthy")["message"]
        wait_for(lambda: cond("redirect", "Healthy").get("reason") == "Redirected", 30, "3xx")
        for name in ("binary", "newline"):

            def invalid(name: str = name) -> bool:
                return cond(name, "ResolvedRefs").get("reason") == "InvalidHeader"

            wait_for(invalid, 30, f"{name}: InvalidHeader")
            assert cond(name, "Ready")["status"] == "False"
        wait_for(lambda: cond("typo", "Ready").get("status") == "True", 30, "typo Ready")
        assert "force-opn" in cond("typo", "Accepted")["message"]
        wait_for(
            lambda: any(
                e["reason"] == "InvalidAnnotation" and e["type"] == "Warning"
                for e in events(cluster, namespace, "typo")
            ),
            10,
            "an InvalidAnnotation Event",
        )

        def series() -> list[str]:
            return [
                line
                for line in op.metrics().splitlines()
                if line.startswith("signalbox_") and 'provider="redirect"' in line
            ]

        assert any(s.startswith("signalbox_probe_outcomes_total{") for s in series())
        cluster.kubectl("delete", "llmp", "redirect", "-n", namespace)
        wait_for(lambda: series() == [], 15, "the deleted provider's series gone")
        everything = json.dumps(
            [cluster.get("llmp", i["metadata"]["name"], namespace) for i in items[3:5]]
        ) + json.dumps(events(cluster, namespace, "newline"))
        for text in (everything, op.log()):
            assert newline_key.split("\n", maxsplit=1)[0] not in text
            assert "second-line" not in text
    finally:
        op.stop()


def test_flapping_is_quiet_and_events_are_aggregated(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    with FakeProvider("f", Flavor.OPENAI, ["m"], host="127.0.0.7").running_in_thread() as fake:
        spec = provider("flappy", fake.base_url, "1s", "500ms")
        spec["spec"]["type"] = "OpenAI"
        spec["spec"]["auth"] = {"secretRef": {"name": "creds", "key": "api-key"}}
        spec["spec"]["healthCheck"]["healthyThreshold"] = 1
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"api-key": "sk-x"},
        }
        op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
        try:
            apply_all(cluster, namespace, [secret, spec])
            wait_for(
                lambda: (healthy(cluster, namespace, "flappy") or {}).get("status") == "True",
                30,
                "Healthy",
            )
            key = 'signalbox_status_writes_total{kind="llmproviders"}'
            before, started = op.metric(key) or 0.0, time.monotonic()
            for _ in range(3):  # down, up: a NotReady and a Ready each time
                fake.set_faults(status=503)
                wait_for(
                    lambda: (healthy(cluster, namespace, "flappy") or {}).get("status") == "False",
                    10,
                    "Healthy=False",
                )
                fake.clear_faults()
                wait_for(
                    lambda: (healthy(cluster, namespace, "flappy") or {}).get("status") == "True",
                    10,
                    "Healthy=True",
                )
            elapsed = time.monotonic() - started
            writes = (op.metric(key) or 0.0) - before
            assert writes <= elapsed / 1.0 + 2, (
                f"{writes} writes in {elapsed:.1f}s at a 1s interval"
            )
            not_ready = [
                e for e in events(cluster, namespace, "flappy") if e["reason"] == "NotReady"
            ]
            assert len(not_ready) == 1, "one Event object for the same reason and message"
            assert not_ready[0]["count"] == 3
        finally:
            op.stop()
