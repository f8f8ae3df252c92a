"""Metrics and queries agree: every metric and label the alerts and the dashboard use is exported.

The real operator and the real router (its limits shared through a real Redis, its policy
caching answers) run against the test cluster with three fake providers; traffic goes through
the router (plain, streamed, failed over, refused by a rate limit, answered from the cache),
then both /metrics endpoints are scraped the way Prometheus scrapes them (the router's on its
own metrics port). Every metric name, matcher label and grouping label in the chart's alert
expressions and in the dashboard's panel queries must be among the scraped samples, and
`promtool check metrics` must find nothing to say about either scrape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signalbox_fake import FakeProvider, Flavor
from tests.support import router as router_support
from tests.support import tools
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, condition, free_port, wait_for
from tests.support.redis_server import RedisServer
from tests.support.router_process import KubeRouter

MODEL = "gpt-4o-mini"
DASHBOARD = tools.CHART / "files" / "dashboards" / "signalbox.json"
# Labels Prometheus attaches to every scraped series from the target; a metric's own label of
# the same name is renamed exported_<name> unless the ServiceMonitor honours it.
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "endpoint"}


@dataclass(frozen=True)
class Scrapes:
    operator: str
    router: str
    answered: dict[str, int]  # status -> how many answers the clients received with it


def _provider(name: str, url: str, **spec: Any) -> dict[str, Any]:
    model = {
        "name": MODEL,
        "capabilities": ["chat", "streaming"],
        "cost": {"inputPerMTok": "2.50", "outputPerMTok": "10.00"},
    }
    return router_support.provider(
        name,
        "OpenAICompatible",
        url,
        models=[model],
        healthCheck={"interval": "10s", "timeout": "2s"},
        **spec,
    )


def _ready(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    c = condition(cluster.get(kind, name, namespace), "Ready")
    return c is not None and c["status"] == "True"


def _send_traffic(router: KubeRouter, primary: FakeProvider) -> dict[str, int]:
    """Plain, streamed, failed-over, rate-limited, cached, refused and malformed requests;
    the status of every answer, as the clients counted them."""
    answered: dict[str, int] = {}

    def got(status: int) -> None:
        answered[str(status)] = answered.get(str(status), 0) + 1

    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    for _ in range(3):
        got(
            client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            ).status_code
        )
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert [chunk for chunk in stream]
    got(200)
    primary.set_faults(status=500, times=2)  # the next call fails over to the backup
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-signalbox-provider"] == "backup"
    got(raw.status_code)
    primary.clear_faults()
    codes = set()
    for _ in range(3):  # one request a minute allowed: the rest are refused with a 429
        resp = httpx.post(
            router.url + "/v1/chat/completions",
            json={"model": "limited", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        codes.add(resp.status_code)
        got(resp.status_code)
    assert codes == {200, 429}
    for expected in ("miss", "hit"):  # a deterministic request, asked twice
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "cache me"}], temperature=0
        )
        assert raw.headers["x-signalbox-cache"] == expected
        got(raw.status_code)
    for body in (b"{not json", b'{"model": "nobody-serves-this", "messages": []}'):
        got(httpx.post(router.url + "/v1/chat/completions", content=body, timeout=10).status_code)
    got(
        httpx.post(
            router.url + "/v1/messages",
            json={
                "model": "nobody",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            },
            timeout=10,
        ).status_code
    )
    return answered


@pytest.fixture(scope="module")
def scrapes(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrapes]:
    """One run of both components with traffic, scraped once for every test here."""
    namespace = cluster.create_namespace("metrics-contract")
    tmp_path = tmp_path_factory.mktemp("metrics-contract")
    try:
        yield from _scraped(cluster, namespace, tmp_path)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _scraped(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Scrapes]:
    primary = FakeProvider("primary", Flavor.OPENAI, [MODEL])
    backup = FakeProvider("backup", Flavor.OPENAI, [MODEL])
    limited = FakeProvider("limited", Flavor.OPENAI, [MODEL])
    redis = RedisServer(tmp_path / "redis").start()
    with primary.running_in_thread(), backup.running_in_thread(), limited.running_in_thread():
        cluster.apply(_provider("primary", primary.base_url, priority=10), namespace)
        cluster.apply(_provider("backup", backup.base_url, priority=20), namespace)
        cluster.apply(
            _provider("limited", limited.base_url, rateLimit={"requestsPerMinute": 1}), namespace
        )
        cluster.apply(
            router_support.policy(
                "chat",
                ["chat"],
                [{"name": n, "model": MODEL} for n in ("primary", "backup")],
                cache={"ttl": "60s"},
            ),
            namespace,
        )
        cluster.apply(
            router_support.policy(
                "limited",
                ["limited"],
                [{"name": "limited", "model": MODEL}],
                failover={"retryAfterMaxWait": "1s"},
            ),
            namespace,
        )
        op = OperatorProcess(cluster, namespace, tmp_path / "operator.log").start()
        metrics_port = free_port()
        router = KubeRouter(
            cluster,
            namespace,
            tmp_path / "router.log",
            extra=["--metrics-port", str(metrics_port), "--redis-url", redis.url],
        )
        try:
            wait_for(
                lambda: (
                    all(
                        _ready(cluster, namespace, "llmp", name)
                        for name in ("primary", "backup", "limited")
                    )
                    and _ready(cluster, namespace, "llmrp", "chat")
                ),
                90,  # generous: on a busy machine the operator takes a while to start
                "the providers and the policy Ready",
            )
            router.start()
            wait_for(lambda: _routable(router), 15, "the router to know the policy")
            answered = _send_traffic(router, primary)
            yield Scrapes(
                operator=op.metrics(),
                router=httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
                answered=answered,
            )
        finally:
            router.stop()
            op.stop()
            redis.stop()


def test_the_router_counts_every_answer_as_its_client_received_it(scrapes: Scrapes) -> None:
    counted: dict[str, int] = {}
    for family in text_string_to_metric_families(scrapes.router):
        for sample in family.samples:
            if sample.name == "signalbox_router_responses_total":
                code = sample.labels["code"]
                counted[code] = counted.get(code, 0) + int(sample.value)
    assert counted == scrapes.answered
    assert {"200", "400", "429"} <= set(counted), "refusals and malformed requests counted too"


def _routable(router: KubeRouter) -> bool:
    resp = httpx.get(router.url + "/v1/models", timeout=2)
    return resp.status_code == 200 and "chat" in resp.text


def _exported(*texts: str) -> dict[str, set[str]]:
    """Sample name (with _total, _bucket, ... suffixes) -> the label names it carries."""
    out: dict[str, set[str]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, set()).update(sample.labels)
    return out


@pytest.fixture(scope="module")
def checker() -> Path:
    return tools.built("dashboard-check")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return tools.built("promtool")


def _used_by_alerts(checker: Path) -> dict[str, dict[str, Any]]:
    """Alert name -> its expression's selectors, and the labels its annotations print."""
    rules = [r for g in tools.rendered_rules(tools.built("helm"))["groups"] for r in g["rules"]]
    proc = tools.run([checker, "promql"], stdin=json.dumps([r["expr"] for r in rules]))
    assert proc.returncode == 0, proc.stderr
    used = {}
    for rule, query in zip(rules, json.loads(proc.stdout), strict=True):
        printed = re.findall(r"\$labels\.([a-zA-Z_]\w*)", json.dumps(rule.get("annotations", {})))
        used[rule["alert"]] = {**query, "printed": printed}
    return used


def _used_by_dashboard(checker: Path) -> dict[str, dict[str, Any]]:
    proc = tools.run([checker, "dashboard", DASHBOARD])
    assert proc.returncode == 0, proc.stderr
    return {
        f"{panel['title']} #{i}": query
        for panel in json.loads(proc.stdout)
        for i, query in enumerate(panel["queries"])
    }


def test_every_metric_and_label_the_alerts_and_dashboard_use_is_exported(
    scrapes: Scrapes, checker: Path
) -> None:
    exported = _exported(scrapes.operator, scrapes.router)
    queries = {**_used_by_alerts(checker), **_used_by_dashboard(checker)}
    assert len(queries) >= 15
    missing = []
    for where, query in queries.items():
        carried: set[str] = set()
        for metric, matchers in query["metrics"].items():
            if metric not in exported:
                missing.append(f"{where}: metric {metric}")
                continue
            carried |= exported[metric]
            missing += [f"{where}: {metric}{{{m}}}" for m in matchers if m not in exported[metric]]
        for label in [*query["labels"], *query.get("printed", [])]:
            if label not in carried and label != "le":
                missing.append(f"{where}: label {label} (on none of {sorted(query['metrics'])})")
    assert not missing, "\n".join(missing)


def test_target_labels_the_queries_use_survive_the_scrape(scrapes: Scrapes) -> None:
    """A metric's own namespace label is only kept as `namespace` if the ServiceMonitor says so."""
    exported = _exported(scrapes.operator, scrapes.router)
    clashing = {label for labels in exported.values() for label in labels} & TARGET_LABELS
    assert clashing == {"namespace"}  # the provider's or policy's namespace, used by the alerts
    docs = tools.render(tools.built("helm"), "-f", str(tools.FULL_VALUES))
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint.get("honorLabels") is True, endpoint


def test_promtool_finds_nothing_wrong_with_either_scrape(scrapes: Scrapes, promtool: Path) -> None:
    for name, text in (("operator", scrapes.operator), ("router", scrapes.router)):
        assert "signalbox_" in text, name
        proc = tools.run([promtool, "check", "metrics"], stdin=text)
        assert proc.returncode == 0, f"{name}:\n{proc.stdout}{proc.stderr}"
        assert not (proc.stdout + proc.stderr).strip(), f"{name}:\n{proc.stdout}{proc.stderr}"
