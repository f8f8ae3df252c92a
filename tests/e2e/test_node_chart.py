"""The chart on a real node: pods from the images built here, traffic through the router pods.

Each test talks to the router's Service through ``kubectl port-forward`` with the official openai
SDK; the vLLM backend is 3 real pods behind a Service, so the EndpointSlices the router follows
are the EndpointSlice controller's own.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.e2e.conftest import CHART, Release
from tests.e2e.workloads import CHAT
from tests.support.cluster import REPO
from tests.support.node import FAKE_IMAGE, helm, port_forward
from tests.support.operator import lease_holder, wait_for


@pytest.fixture
def client(release: Release) -> Iterator[openai.OpenAI]:
    with port_forward(release.cluster, release.namespace, f"svc/{release.name}-router", 80) as port:
        yield openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=release.api_key,
            max_retries=0,
            timeout=20,
        )


def served_by(client: openai.OpenAI) -> tuple[str, str]:
    """One chat request: (the provider the router picked, the pod that answered)."""
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT, messages=[{"role": "user", "content": "who is there?"}]
    )
    text = raw.parse().choices[0].message.content or ""
    found = re.search(r"Hello from (\S+?)\.", text)
    return raw.headers["x-signalbox-provider"], found.group(1) if found else text


def pods(release: Release, selector: str) -> list[str]:
    out = release.kubectl("get", "pods", "-l", selector, "-o", "json")
    return sorted(
        p["metadata"]["name"]
        for p in json.loads(out)["items"]
        if not p["metadata"].get("deletionTimestamp")
    )


def test_chart_pods_run_non_root_on_a_read_only_root(release: Release) -> None:
    for component in ("operator", "router"):
        names = pods(release, f"app.kubernetes.io/component={component}")
        assert len(names) == 2, names
        for name in names:
            uid = release.kubectl("exec", name, "--", "id", "-u").strip()
            assert uid == "10001"
            wrote = release.cluster.kubectl(
                "-n", release.namespace, "exec", name, "--", "touch", "/probe", check=False
            )
            assert wrote.returncode != 0
            assert "Read-only file system" in wrote.stderr
    for sa in ("operator", "router"):
        can = release.cluster.kubectl(
            "auth", "can-i", "create", "clusterrolebindings",
            f"--as=system:serviceaccount:{release.namespace}:{release.name}-{sa}", check=False,
        )  # fmt: skip
        assert can.stdout.strip() == "no"


def test_the_metrics_port_serves_prometheus_token_only(release: Release) -> None:
    # Client keys are on: the router pods' metrics port asks for the token the chart made,
    # the one its ServiceMonitor presents.
    encoded = release.kubectl(
        "get", "secret", f"{release.name}-router-metrics-token", "-o", "jsonpath={.data.token}"
    )
    token = base64.b64decode(encoded).decode()
    target = f"svc/{release.name}-router-metrics"
    with port_forward(release.cluster, release.namespace, target, 9090) as port:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=20, trust_env=False).status_code == 401
        keyed = {"authorization": f"Bearer {release.api_key}"}  # a client key is not enough
        assert httpx.get(url, headers=keyed, timeout=20, trust_env=False).status_code == 401
        scraped = httpx.get(
            url, headers={"authorization": f"Bearer {token}"}, timeout=20, trust_env=False
        )
    assert scraped.status_code == 200
    assert "signalbox_router_requests_total" in scraped.text


def test_traffic_is_balanced_across_the_vllm_pods(release: Release, client: openai.OpenAI) -> None:
    vllm = pods(release, "app=vllm")
    assert len(vllm) == 3
    # Least outstanding requests balances concurrent traffic (one request at a time always
    # finds every pod idle, and the router then keeps to one of them).
    with ThreadPoolExecutor(6) as pool:
        seen = Counter(pool.map(lambda _: served_by(client), range(60)))
    assert {provider for provider, _ in seen} == {"vllm"}
    assert {pod for _, pod in seen} == set(vllm), seen


def test_deleting_a_vllm_pod_moves_traffic_off_it_with_no_client_error(
    release: Release, client: openai.OpenAI
) -> None:
    victim = pods(release, "app=vllm")[0]
    errors: list[str] = []
    after: list[str] = []
    deleted = threading.Event()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                _, pod = served_by(client)
            except openai.OpenAIError as exc:
                errors.append(repr(exc))
                continue
            if deleted.is_set():
                after.append(pod)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        time.sleep(2)
        release.kubectl("delete", "pod", victim, "--wait=true", "--timeout=60s")
        deleted.set()
        time.sleep(8)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not errors, errors[:3]
    assert len(after) > 5
    assert victim not in after
    release.kubectl("rollout", "status", "deploy/vllm", "--timeout=120s")


def test_vllm_scaled_to_zero_spills_to_the_cloud_and_comes_back(
    release: Release, client: openai.OpenAI
) -> None:
    def ready() -> str:
        return release.kubectl(
            "get", "llmp", "vllm", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        )

    release.kubectl("scale", "deploy/vllm", "--replicas=0")
    try:
        wait_for(lambda: ready() == "False", 60, "vllm not Ready")
        providers = {served_by(client)[0] for _ in range(10)}
        assert providers == {"cloud"}
    finally:
        release.kubectl("scale", "deploy/vllm", "--replicas=3")
    release.kubectl("rollout", "status", "deploy/vllm", "--timeout=120s")
    wait_for(lambda: ready() == "True", 60, "vllm Ready again")
    wait_for(lambda: served_by(client)[0] == "vllm", 30, "traffic back on vllm")


def _ollama_ready(release: Release) -> str:
    return release.kubectl(
        "get", "llmp", "ollama", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )


def status_follows_ollama(release: Release, within: float) -> None:
    """Scale the Ollama pod away: its LLMProvider turns not Ready; scale back: Ready again."""
    release.kubectl("scale", "deploy/ollama", "--replicas=0")
    try:
        wait_for(lambda: _ollama_ready(release) == "False", within, "ollama not Ready")
    finally:
        release.kubectl("scale", "deploy/ollama", "--replicas=1")
    wait_for(lambda: _ollama_ready(release) == "True", within + 30, "ollama Ready again")


def test_deleting_the_leader_pod_hands_over_to_a_live_replica(
    release: Release, client: openai.OpenAI
) -> None:
    """The leader releases the lease on SIGTERM; the standby, or the pod that replaces the
    leader (they race for the released lease), leads. The standby was never restarted by its
    probes meanwhile: it stands by, Ready."""
    operators = pods(release, "app.kubernetes.io/component=operator")
    leader = wait_for(
        lambda: lease_holder(release.cluster, release.namespace), 60, "an operator leads"
    )
    assert leader in operators
    standby = next(name for name in operators if name != leader)
    release.kubectl("delete", "pod", leader, "--wait=false")

    def new_leader() -> str | None:
        holder = lease_holder(release.cluster, release.namespace)
        return holder if holder and holder != leader else None

    holder = wait_for(new_leader, 90, "another replica leads")
    assert holder in pods(release, "app.kubernetes.io/component=operator")
    status_follows_ollama(release, 30)
    assert {served_by(client)[0] for _ in range(5)} == {"vllm"}
    release.kubectl("rollout", "status", f"deploy/{release.name}-operator", "--timeout=120s")
    state = json.loads(release.kubectl("get", "pod", standby, "-o", "json"))["status"]
    assert state["containerStatuses"][0]["restartCount"] == 0
    ready = next(c for c in state["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


LOOP = """
import json, os, sys, time, httpx
url = os.environ["ROUTER"] + "/v1/chat/completions"
headers = {"authorization": "Bearer " + os.environ["KEY"]}
body = {"model": "chat-default", "messages": [{"role": "user", "content": "steady"}]}
counts, failures = {}, []
with httpx.Client(timeout=20) as client:
    print("started", flush=True)
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        try:
            status = str(client.post(url, json=body, headers=headers).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        counts[status] = counts.get(status, 0) + 1
        time.sleep(0.05)
print(json.dumps(counts), flush=True)
"""


def request_loop_pod(release: Release, seconds: int) -> str:
    """An application pod that calls the router's Service in a steady loop for ``seconds``."""
    name = f"loop-{int(time.time())}"
    release.cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "loop",
                        "image": FAKE_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", LOOP, str(seconds)],
                        "env": [
                            {"name": "ROUTER", "value": f"http://{release.name}-router"},
                            {"name": "KEY", "value": release.api_key},
                        ],
                    }
                ],
            },
        },
        release.namespace,
    )
    wait_for(
        lambda: "started" in release.kubectl("logs", name, check=False), 60, "the loop started"
    )
    return name


def loop_counts(release: Release, name: str, seconds: int) -> dict[str, int]:
    wait_for(
        lambda: (
            release.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}") == "Succeeded"
        ),
        seconds + 60,
        "the loop finished",
        every=1,
    )
    counts: dict[str, int] = json.loads(release.kubectl("logs", name).strip().splitlines()[-1])
    return counts


def test_helm_upgrade_rolls_the_router_with_no_failed_request(release: Release) -> None:
    before = pods(release, "app.kubernetes.io/component=router")
    loop = request_loop_pod(release, 60)
    helm(
        release.cluster, "upgrade", release.name, str(CHART), "-n", release.namespace, "--wait",
        "--timeout", "5m", *release.values("router.podAnnotations.rollout=e2e-upgrade"),
    )  # fmt: skip
    release.kubectl("rollout", "status", f"deploy/{release.name}-router", "--timeout=180s")
    after = pods(release, "app.kubernetes.io/component=router")
    assert not set(before) & set(after), (before, after)
    counts = loop_counts(release, loop, 60)
    assert set(counts) == {"200"}, counts
    assert counts["200"] > 50


def _cluster_script(release: Release, verb: str) -> None:
    subprocess.run(
        ["bash", str(REPO / "hack" / "cluster.sh"), verb, release.cluster.name],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_api_server_restart_the_router_serves_and_the_operator_leads_again(
    release: Release,
) -> None:
    loop = request_loop_pod(release, 50)
    time.sleep(3)
    _cluster_script(release, "stop-apiserver")
    try:
        time.sleep(20)
    finally:
        _cluster_script(release, "start-apiserver")
    wait_for(
        lambda: lease_holder(release.cluster, release.namespace), 30, "an operator leads again"
    )
    status_follows_ollama(release, 30)
    counts = loop_counts(release, loop, 50)
    assert set(counts) == {"200"}, counts
