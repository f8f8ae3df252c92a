"""The router as a sidecar, as the chart's README shows it: an application pod with the router
beside the app (a native sidecar: an init container that keeps running), bound to loopback, under
the chart's `<release>-router-sidecar` ServiceAccount. The app calls it on localhost with the
official openai SDK and gets answers from the in-cluster vLLM pods, whose readiness the router
knows from the operator's status, read with that ServiceAccount's own read-only access."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.e2e.conftest import Release
from tests.e2e.workloads import CHAT
from tests.support.node import FAKE_IMAGE, ROUTER_IMAGE
from tests.support.operator import wait_for

APP = """
import json, re, openai
client = openai.OpenAI(max_retries=0, timeout=20)  # OPENAI_BASE_URL, OPENAI_API_KEY
served = []
for _ in range(12):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "who is there?"}]
    )
    text = raw.parse().choices[0].message.content or ""
    found = re.search(r"Hello from (\\S+?)\\.", text)
    served.append([raw.headers["x-signalbox-provider"], found.group(1) if found else text])
print(json.dumps(served), flush=True)
"""
NS_FIELD = "metadata.namespace"
READYZ = "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/readyz', timeout=3)"
SECURITY = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def sidecar_pod(release: Release, name: str) -> dict[str, Any]:
    router = {
        "name": "signalbox-router",
        "image": ROUTER_IMAGE,
        "imagePullPolicy": "Never",
        "restartPolicy": "Always",  # a native sidecar: up before the app, stopped after it
        "args": ["--namespace=$(POD_NAMESPACE)", "--host=127.0.0.1", "--port=8080"],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": NS_FIELD}}}],
        # the app starts once the router is ready; HTTP probes would go to the pod's IP
        "startupProbe": {"exec": {"command": ["python", "-c", READYZ]}, "periodSeconds": 2,
                         "timeoutSeconds": 5, "failureThreshold": 60},
        "securityContext": SECURITY,
    }  # fmt: skip
    app = {
        "name": "app",
        "image": FAKE_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", f"MODEL = {CHAT!r}\n{APP}"],
        "env": [
            {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:8080/v1"},
            {"name": "OPENAI_API_KEY", "value": "unused"},
        ],
        "securityContext": SECURITY,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sidecar-e2e"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": f"{release.name}-router-sidecar",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "initContainers": [router],
            "containers": [app],
        },
    }


def test_an_app_calls_its_router_sidecar_on_localhost(release: Release) -> None:
    account = f"system:serviceaccount:{release.namespace}:{release.name}-router-sidecar"
    for verb, what, allowed in (
        ("watch", "llmproviders.signalbox.dev", "yes"),
        ("list", "endpointslices.discovery.k8s.io", "yes"),
        ("patch", "llmproviders.signalbox.dev", "no"),
        ("create", "secrets", "no"),
        ("update", "leases.coordination.k8s.io", "no"),
    ):
        can = release.cluster.kubectl(
            "auth", "can-i", verb, what, "-n", release.namespace, f"--as={account}", check=False
        )
        assert can.stdout.strip() == allowed, (verb, what)

    name = f"app-with-router-{int(time.time())}"
    release.cluster.apply(sidecar_pod(release, name), release.namespace)
    try:

        def phase() -> str | None:
            got = release.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
            return got if got in ("Succeeded", "Failed") else None

        done = wait_for(phase, 150, "the app finished", every=1)
        logs = release.kubectl("logs", name, "-c", "app", check=False)
        assert done == "Succeeded", logs + release.kubectl("logs", name, "-c", "signalbox-router")
        served = json.loads(logs.strip().splitlines()[-1])
        vllm = {
            p["metadata"]["name"]
            for p in json.loads(release.kubectl("get", "pods", "-l", "app=vllm", "-o", "json"))[
                "items"
            ]
        }
        assert len(served) == 12
        assert {provider for provider, _ in served} == {"vllm"}
        assert {pod for _, pod in served} <= vllm, served
    finally:
        release.kubectl("delete", "pod", name, "--wait=false", check=False)
