"""The in-cluster backends the end-to-end tests run as pods, and the resources that name them.

An "in-cluster vLLM" (3 fake vLLM pods, each asking for a fake ``nvidia.com/gpu``, behind a
Service), an "in-cluster Ollama" (1 pod), and a "cloud" OpenAI fake that the operator and router
reach by its cluster DNS name only. Each fake answers "Hello from <its pod name>", so a test
can tell which pod served a request.
"""

from __future__ import annotations

from typing import Any

from tests.support.node import FAKE_IMAGE

VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CHAT = "chat-default"
Doc = dict[str, Any]

_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def fake_deployment(
    name: str, flavor: str, model: str, replicas: int, probe: str, gpus: int = 0, key: bool = False
) -> list[Doc]:
    """A Deployment of fake providers and the Service (port 80) in front of it; with ``key``,
    the fake takes only the API key of the Secret `cloud-credentials`."""
    args = ["--flavor", flavor, "--name", "$(POD_NAME)", "--model", model]
    env: list[Doc] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    if key:
        args += ["--api-key-env", "API_KEY"]
        ref = {"name": "cloud-credentials", "key": "api-key"}
        env.append({"name": "API_KEY", "valueFrom": {"secretKeyRef": ref}})
    container: Doc = {
        "name": "fake",
        "image": FAKE_IMAGE,
        "imagePullPolicy": "Never",
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": probe, "port": "http"}, "periodSeconds": 2},
        "securityContext": _SECURITY,
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    labels = {"app": name}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "automountServiceAccountToken": False,
                        "containers": [container],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]


def backends(cloud_key: str) -> list[Doc]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloud-credentials"},
        "stringData": {"api-key": cloud_key},
    }
    return [
        secret,
        *fake_deployment("vllm", "vllm", VLLM_MODEL, 3, "/health", gpus=1),
        *fake_deployment("ollama", "ollama", "llama3.2:3b", 1, "/api/tags"),
        *fake_deployment("cloud", "openai", "gpt-4o-mini", 1, "/_fake/faults", key=True),
    ]


def _provider(name: str, type_: str, endpoint: Doc, model: str, priority: int) -> Doc:
    auth = {"auth": {"secretRef": {"name": "cloud-credentials", "key": "api-key"}}}
    return {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": name},
        "spec": {
            "type": type_,
            "endpoint": endpoint,
            "priority": priority,
            "models": [{"name": model, "capabilities": ["chat", "streaming"]}],
            "healthCheck": {"interval": "2s", "timeout": "1s", "unhealthyThreshold": 2},
            **(auth if type_ == "OpenAI" else {}),
        },
    }


def providers(namespace: str) -> list[Doc]:
    """vLLM and Ollama by `endpoint.service`; the cloud fake by its cluster DNS name."""
    cloud_url = f"http://cloud.{namespace}.svc.cluster.local/v1"
    return [
        _provider(
            "vllm", "VLLM", {"service": {"name": "vllm", "port": 80, "path": "/v1"}}, VLLM_MODEL, 10
        ),
        _provider(
            "ollama", "Ollama", {"service": {"name": "ollama", "port": 80}}, "llama3.2:3b", 10
        ),
        _provider("cloud", "OpenAI", {"url": cloud_url}, "gpt-4o-mini", 30),
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": CHAT},
            "spec": {
                "models": [CHAT],
                "providers": [{"name": "vllm"}, {"name": "cloud"}],
                "strategy": "Priority",
                "failover": {"maxAttempts": 3},
            },
        },
    ]
