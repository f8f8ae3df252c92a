"""The chart README's quick start, run as written on a node with no release, then how fast
status and traffic follow a fault, a recovery and a pool scaled from zero, with the example's
own settings (a 5 s interval).

It runs last (after ``test_uninstall``, see conftest): a fresh cluster has neither the CRDs nor a
release, so the session's release and its kept CRDs are removed first.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.cluster import REPO, Cluster
from tests.support.node import helm, helm_binary, kubectl_binary, port_forward
from tests.support.operator import wait_for

README = REPO / "charts" / "signalbox" / "README.md"
NS = "team-a"
MARK = "<!-- quick-start -->"
TARGET = 10.0  # seconds: the most status and traffic may lag a change


def quick_start() -> str:
    """The shell block under the README's quick-start mark, as written."""
    text = README.read_text()
    found = re.search(re.escape(MARK) + r"\n```sh\n(.*?)\n```", text, re.S)
    assert found, f"{README} has no ```sh block under {MARK}"
    return found.group(1)


def _fresh(node: Cluster) -> None:
    """No release, no CRDs, no quick-start namespaces: as on a cluster never used."""
    for release, namespace in (("signalbox", "signalbox-e2e"), ("signalbox", "signalbox")):
        helm(node, "uninstall", release, "-n", namespace, "--wait", "--ignore-not-found")
    node.kubectl(
        "delete", "crd", "llmproviders.signalbox.dev", "routingpolicies.signalbox.dev",
        "--ignore-not-found", "--timeout=120s", timeout=150,
    )  # fmt: skip
    node.kubectl(
        "delete", "namespace", NS, "signalbox", "--ignore-not-found", "--timeout=180s",
        timeout=200,
    )  # fmt: skip


@pytest.fixture(scope="module")
def started(node: Cluster) -> Iterator[str]:
    """The quick start's output, run by bash from the repository's root."""
    _fresh(node)
    path = f"{helm_binary().parent}:{kubectl_binary().parent}:{os.environ['PATH']}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quick_start()],
        cwd=REPO,
        env={**node.env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"the quick start failed:\n{proc.stderr}\n{proc.stdout}"
    yield proc.stdout
    _fresh(node)


def test_the_quick_start_serves_a_request_as_written(started: str) -> None:
    answer = json.loads(started.strip().splitlines()[-1])
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].startswith("Hello from vllm-"), answer
    assert re.search(r"llmprovider\.signalbox\.dev/vllm\s+VLLM\s+True\s+Closed", started), started


def _ready(node: Cluster, name: str) -> str:
    return node.kubectl(
        "get", "llmp", name, "-n", NS,
        "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    ).stdout  # fmt: skip


def _timed(check: Callable[[], bool], what: str, timeout: float = 60) -> float:
    start = time.monotonic()
    wait_for(check, timeout, what, every=0.2)
    return time.monotonic() - start


def test_status_and_traffic_follow_a_fault_a_recovery_and_a_pool_in_seconds(
    node: Cluster, started: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = node.kubectl(
        "get", "secret", "-n", "signalbox", "signalbox-router-client-keys",
        "-o", "jsonpath={.data.api-keys}",
    ).stdout  # fmt: skip
    headers = {"Authorization": f"Bearer {base64.b64decode(key).decode().strip()}"}
    cloud_pod = node.kubectl(
        "get", "pods", "-n", NS, "-l", "app=cloud", "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout
    with (
        port_forward(node, "signalbox", "svc/signalbox-router", 80) as router_port,
        port_forward(node, NS, f"pod/{cloud_pod}", 8000) as cloud_port,
    ):
        router = f"http://127.0.0.1:{router_port}/v1/chat/completions"
        faults = f"http://127.0.0.1:{cloud_port}/_fake/faults"

        def served_by(model: str) -> str:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            resp = httpx.post(router, json=body, headers=headers, timeout=10)
            return resp.headers.get("x-signalbox-provider", "") if resp.status_code == 200 else ""

        figures: dict[str, float] = {}
        httpx.put(faults, json={"status": 503}, timeout=10).raise_for_status()
        figures["a fault shows (cloud Ready=False)"] = _timed(
            lambda: _ready(node, "cloud") == "False", "cloud not Ready"
        )
        httpx.put(faults, json={}, timeout=10).raise_for_status()
        healed = time.monotonic()
        figures["a healed provider takes traffic"] = _timed(
            lambda: served_by("gpt-4o-mini") == "cloud", "traffic back on the cloud"
        )
        figures["a healed provider shows Ready"] = time.monotonic() - healed
        wait_for(lambda: _ready(node, "cloud") == "True", 30, "cloud Ready")

        node.kubectl("scale", "deploy/vllm", "-n", NS, "--replicas=0")
        wait_for(lambda: served_by("chat-default") == "cloud", 60, "the pool's traffic spilled")
        node.kubectl("scale", "deploy/vllm", "-n", NS, "--replicas=2")
        node.kubectl("rollout", "status", "deploy/vllm", "-n", NS, "--timeout=120s", timeout=150)
        figures["a ready pool shows Ready"] = _timed(
            lambda: _ready(node, "vllm") == "True", "vllm Ready"
        )
        figures["a ready pool takes its traffic back"] = (
            _timed(lambda: served_by("chat-default") == "vllm", "traffic back on the pool")
            + figures["a ready pool shows Ready"]
        )
    with capsys.disabled():  # the figures the operator's README quotes, in the test's output
        for what, seconds in figures.items():
            print(f"\n  {what}: {seconds:.1f} s", end="")
    slow = {what: round(s, 1) for what, s in figures.items() if s > TARGET}
    assert not slow, f"over {TARGET} s: {slow}"
