"""Resolving a provider's Secret, Service and EndpointSlices from in-memory look-ups."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from signalbox_api.conditions import Reason
from signalbox_api.provider import EndpointCounts, LLMProviderSpec
from signalbox_operator.probing import refs
from signalbox_operator.probing.refs import Key, Lookups, ServicePort, SliceEndpoint
from signalbox_operator.probing.secret_values import SecretValues
from signalbox_operator.status.provider_status import Refs

NS = "llm"
API_KEY = "sk-very-secret-value"

HTTP = ServicePort(name="http", port=80, target_port="http")
SLICE_PORTS = {"http": 8000}


def lookups(
    secrets: Mapping[Key, Mapping[str, str | int]] | None = None,
    services: Mapping[Key, Sequence[ServicePort]] | None = None,
    slices: Mapping[Key, Sequence[SliceEndpoint]] | None = None,
) -> Lookups:
    s, v, e = secrets or {}, services or {}, slices or {}
    return Lookups(secret=s.get, service=v.get, endpoints=lambda key: e.get(key, []))


def url_spec(auth: bool = True, **extra: Any) -> LLMProviderSpec:
    raw: dict[str, Any] = {"type": "OpenAI", "endpoint": {"url": "https://api.openai.com/v1"}}
    if auth:
        raw["auth"] = {"secretRef": {"name": "openai", "key": "apiKey"}}
    raw.update(extra)
    return LLMProviderSpec.model_validate(raw)


def service_spec(auth: bool = False, **service: Any) -> LLMProviderSpec:
    ref: dict[str, Any] = {"name": "vllm", "port": 80, "path": "/v1"}
    ref.update(service)
    raw: dict[str, Any] = {"type": "VLLM", "endpoint": {"service": ref}}
    if auth:
        raw["auth"] = {"secretRef": {"name": "vllm-key", "key": "token"}}
    return LLMProviderSpec.model_validate(raw)


def ep(address: str, ready: bool = True, ports: Mapping[str, int] = SLICE_PORTS) -> SliceEndpoint:
    return SliceEndpoint(address=address, ready=ready, ports=ports)


# -- url providers ------------------------------------------------------------------------


def test_url_provider_with_auth() -> None:
    got = refs.resolve(url_spec(), NS, lookups(secrets={(NS, "openai"): {"apiKey": API_KEY}}))
    assert got == Refs(base_url="https://api.openai.com/v1", api_key=API_KEY)
    assert got.ok
    assert got.endpoints is None


def test_url_provider_without_auth_needs_no_secret() -> None:
    spec = LLMProviderSpec.model_validate(
        {"type": "Ollama", "endpoint": {"url": "http://ollama.local:11434"}}
    )
    got = refs.resolve(spec, NS, lookups())
    assert got == Refs(base_url="http://ollama.local:11434")
    assert got.ok
    assert got.api_key is None


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({}, "Secret llm/openai not found"),
        ({("other", "openai"): {"apiKey": API_KEY}}, "Secret llm/openai not found"),
        ({(NS, "openai"): {"key": API_KEY}}, "Secret llm/openai has no key 'apiKey'"),
        ({(NS, "openai"): {}}, "Secret llm/openai has no key 'apiKey'"),
    ],
)
def test_secret_problems(secrets: dict[Key, dict[str, str]], message: str) -> None:
    got = refs.resolve(url_spec(), NS, lookups(secrets=secrets))
    assert (got.reason, got.message) == (Reason.SECRET_NOT_FOUND, message)
    assert not got.ok
    assert got.base_url is None
    assert got.api_key is None
    assert API_KEY not in got.message


def test_a_value_too_large_for_an_api_key_is_named() -> None:
    """A key past MAX_KEY_BYTES is never read (the operator knows only its size); a provider
    that refers to one is told why it cannot be used."""
    held: dict[str, str | int] = {"apiKey": 1_000_000, "other": "sk-1"}
    got = refs.resolve(url_spec(), NS, lookups({(NS, "openai"): held}))
    assert got.reason == Reason.INVALID_HEADER
    assert got.message == (
        f"Secret {NS}/openai key 'apiKey' holds 1000000 bytes: more than an API key "
        f"(at most {refs.MAX_KEY_BYTES})"
    )
    long_text = {"apiKey": "x" * (refs.MAX_KEY_BYTES + 1)}  # as signalbox-check reads files
    assert refs.resolve(url_spec(), NS, lookups({(NS, "openai"): long_text})).reason == (
        Reason.INVALID_HEADER
    )


async def test_only_the_keys_providers_refer_to_are_read_and_held() -> None:
    data = {
        "apiKey": base64.b64encode(b" sk-1\n").decode(),
        "tls.crt": base64.b64encode(b"c" * 4000).decode(),
        "blob": base64.b64encode(b"b" * 1_000_000).decode(),
    }
    reads: list[tuple[str, str]] = []

    async def read(namespace: str, name: str) -> dict[str, str] | None:
        reads.append((namespace, name))
        return data

    values = SecretValues(read)
    shape = refs.secret_shape("7", data)
    assert shape.sizes == {"apiKey": 6, "tls.crt": 4000, "blob": 1_000_000}
    secret = (NS, "openai")
    assert values.view(secret, shape)["apiKey"] == 6, "nothing read, nothing held"
    await values.ensure(secret, "apiKey", shape)
    await values.ensure(secret, "apiKey", shape)
    assert reads == [secret], "read once per version of the Secret"
    assert values.held() == {secret: ("apiKey",)}
    assert refs.resolve(url_spec(), NS, lookups({secret: values.view(secret, shape)})).ok
    await values.ensure(secret, "blob", shape)
    assert reads == [secret], "a value too large for a key is never read"
    await values.ensure(secret, "apiKey", refs.secret_shape("8", data))
    assert reads == [secret, secret], "a new version is read again"
    values.forget(secret)
    assert values.held() == {}


def test_a_referred_key_not_read_yet_says_so() -> None:
    got = refs.resolve(url_spec(), NS, lookups({(NS, "openai"): {"apiKey": 12}}))
    assert got.reason == Reason.SECRET_NOT_FOUND
    assert "could not be read yet" in got.message


def test_empty_secret_value_is_still_resolved() -> None:
    got = refs.resolve(url_spec(), NS, lookups(secrets={(NS, "openai"): {"apiKey": ""}}))
    assert got.ok
    assert got.api_key == ""


# -- service providers --------------------------------------------------------------------


def test_service_missing() -> None:
    got = refs.resolve(service_spec(), NS, lookups())
    assert (got.reason, got.message) == (Reason.SERVICE_NOT_FOUND, "Service llm/vllm not found")


def test_service_without_the_port() -> None:
    services = {(NS, "vllm"): [ServicePort("http", 8080, 8000), ServicePort("grpc", 81, 9000)]}
    got = refs.resolve(service_spec(), NS, lookups(services=services))
    assert (got.reason, got.message) == (
        Reason.SERVICE_NOT_FOUND,
        "Service llm/vllm has no port 80",
    )


def test_two_of_three_ready() -> None:
    slices = {
        (NS, "vllm"): [ep("10.0.0.1", ready=False), ep("10.0.0.2"), ep("10.0.0.3")],
    }
    got = refs.resolve(service_spec(), NS, lookups(services={(NS, "vllm"): [HTTP]}, slices=slices))
    assert got == Refs(
        base_url="http://10.0.0.2:8000/v1",
        endpoints=EndpointCounts(ready=2, total=3),
        message="2/3 endpoints ready",
    )
    assert got.ok


def test_service_in_another_namespace_with_https_and_auth() -> None:
    key = ("models", "vllm")
    got = refs.resolve(
        service_spec(auth=True, namespace="models", scheme="https", path=""),
        NS,
        lookups(
            secrets={(NS, "vllm-key"): {"token": API_KEY}},
            services={key: [HTTP]},
            slices={key: [ep("10.1.0.9")]},
        ),
    )
    assert got.base_url == "https://10.1.0.9:8000"
    assert got.api_key == API_KEY
    assert got.endpoints == EndpointCounts(ready=1, total=1)


def test_service_secret_is_checked_first() -> None:
    got = refs.resolve(service_spec(auth=True), NS, lookups())
    assert got.reason == Reason.SECRET_NOT_FOUND


@pytest.mark.parametrize(
    "endpoints",
    [[], [ep("10.0.0.1", ready=False), ep("10.0.0.2", ready=False)]],
    ids=["no endpoints", "none ready"],
)
def test_no_ready_endpoints(endpoints: list[SliceEndpoint]) -> None:
    got = refs.resolve(
        service_spec(),
        NS,
        lookups(services={(NS, "vllm"): [HTTP]}, slices={(NS, "vllm"): endpoints}),
    )
    assert got.reason == Reason.NO_READY_ENDPOINTS
    assert got.message == f"Service llm/vllm has no ready endpoints ({len(endpoints)} total)"
    assert got.endpoints == EndpointCounts(ready=0, total=len(endpoints))
    assert got.base_url is None


@pytest.mark.parametrize(
    ("port", "endpoint", "url"),
    [
        (HTTP, ep("10.0.0.5"), "http://10.0.0.5:8000/v1"),
        (HTTP, ep("fd00::1:2"), "http://[fd00::1:2]:8000/v1"),
        (
            ServicePort("", 80, 9000),
            ep("10.0.0.5", ports={"": 7000}),
            "http://10.0.0.5:7000/v1",
        ),
        (
            ServicePort("http", 80, 9000),
            ep("10.0.0.5", ports={"metrics": 9090}),
            "http://10.0.0.5:9000/v1",
        ),
        (
            ServicePort("http", 80, "named"),
            ep("10.0.0.5", ports={}),
            "http://10.0.0.5:80/v1",
        ),
        (ServicePort("http", 80, None), ep("10.0.0.5", ports={}), "http://10.0.0.5:80/v1"),
    ],
    ids=[
        "named slice port",
        "ipv6 bracketed",
        "unnamed port",
        "fallback to numeric targetPort",
        "fallback to service port for named targetPort",
        "fallback to service port",
    ],
)
def test_endpoint_url(port: ServicePort, endpoint: SliceEndpoint, url: str) -> None:
    svc = service_spec().endpoint.service
    assert svc is not None
    assert refs.endpoint_url(svc, endpoint, port) == url


# -- parsing Kubernetes objects -----------------------------------------------------------

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "vllm", "namespace": NS, "uid": "1"},
    "spec": {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.10",
        "selector": {"app": "vllm"},
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8000},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": "metrics"},
            {"port": 81, "protocol": "TCP"},
        ],
    },
}

SLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
        "name": "vllm-abc12",
        "namespace": NS,
        "labels": {"kubernetes.io/service-name": "vllm"},
    },
    "addressType": "IPv4",
    "endpoints": [
        {
            "addresses": ["10.0.0.1"],
            "conditions": {"ready": False, "serving": True, "terminating": True},
            "targetRef": {"kind": "Pod", "name": "vllm-0", "namespace": NS},
        },
        {
            "addresses": ["10.0.0.2"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": "node-a",
        },
        {"addresses": ["10.0.0.3"], "conditions": {}},
        {"addresses": ["10.0.0.4"]},
        {"addresses": ["10.0.0.5"], "conditions": {"ready": None}},
    ],
    "ports": [
        {"name": "http", "port": 8000, "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
    ],
}


def test_parse_service() -> None:
    assert refs.parse_service(SERVICE) == [
        ServicePort(name="http", port=80, target_port=8000),
        ServicePort(name="metrics", port=9090, target_port="metrics"),
        ServicePort(name="", port=81, target_port=None),
    ]


@pytest.mark.parametrize(
    "body", [{}, {"spec": None}, {"spec": {}}, {"spec": {"ports": None}}, {"spec": "x"}]
)
def test_parse_service_without_ports(body: dict[str, Any]) -> None:
    assert refs.parse_service(body) == []


def test_parse_slice() -> None:
    ports = {"http": 8000, "metrics": 9090}
    assert refs.parse_slice(SLICE) == [
        SliceEndpoint(address="10.0.0.1", ready=False, ports=ports),
        SliceEndpoint(address="10.0.0.2", ready=True, ports=ports),
        SliceEndpoint(address="10.0.0.3", ready=True, ports=ports),
        SliceEndpoint(address="10.0.0.4", ready=True, ports=ports),
        SliceEndpoint(address="10.0.0.5", ready=True, ports=ports),
    ]


def test_parse_slice_edge_cases() -> None:
    body = {
        "addressType": "IPv6",
        "endpoints": [
            {"addresses": ["fd00::1", "fd00::2"], "conditions": {"ready": True}},
            {"addresses": [], "conditions": {"ready": True}},
            {"conditions": {"ready": True}},
        ],
        "ports": [{"name": None, "port": 8080}, {"name": "noport"}, {"port": None}],
    }
    assert refs.parse_slice(body) == [
        SliceEndpoint(address="fd00::1", ready=True, ports={"": 8080}),
        SliceEndpoint(address="fd00::2", ready=True, ports={"": 8080}),
    ]
    assert refs.parse_slice({}) == []
    assert refs.parse_slice({"endpoints": None, "ports": None}) == []


def test_resolve_from_parsed_objects() -> None:
    key = (NS, "vllm")
    got = refs.resolve(
        service_spec(),
        NS,
        lookups(
            services={key: refs.parse_service(SERVICE)},
            slices={key: refs.parse_slice(SLICE)},
        ),
    )
    assert got.base_url == "http://10.0.0.2:8000/v1"
    assert got.endpoints == EndpointCounts(ready=4, total=5)


# -- secrets stay out of sight ------------------------------------------------------------


def test_repr_never_shows_the_api_key() -> None:
    direct = Refs(base_url="https://api.openai.com/v1", api_key=API_KEY)
    resolved = refs.resolve(url_spec(), NS, lookups(secrets={(NS, "openai"): {"apiKey": API_KEY}}))
    assert resolved.api_key == API_KEY
    for r in (direct, resolved):
        assert API_KEY not in repr(r)
        assert API_KEY not in str(r)
        assert "https://api.openai.com/v1" in repr(r)


def test_the_operators_index_of_secrets_holds_no_value() -> None:
    from signalbox_operator import handlers

    data = {"apiKey": base64.b64encode(b"sk-1").decode(), "blob": "QUJD" * 250_000}
    body = {"metadata": {"resourceVersion": "9"}, "data": data}
    index: Any = handlers.secret_index  # kopf types it as its own callback protocol
    held = index(namespace=NS, name="s", body=body)
    assert held == {(NS, "s"): refs.SecretShape("9", {"apiKey": 4, "blob": 750_000})}
    assert "sk-1" not in repr(held)


async def test_providers_sharing_a_secret_cause_one_read_of_it() -> None:
    data = {"a": base64.b64encode(b"sk-a").decode(), "b": base64.b64encode(b"sk-b").decode()}
    reads = 0

    async def read(namespace: str, name: str) -> dict[str, str] | None:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)  # the API server takes its time
        return data

    values = SecretValues(read)
    shape, secret = refs.secret_shape("3", data), (NS, "shared")
    await asyncio.gather(*(values.ensure(secret, "a", shape) for _ in range(50)))
    assert reads == 1
    await asyncio.gather(values.ensure(secret, "a", shape), values.ensure(secret, "b", shape))
    assert values.held() == {secret: ("a", "b")}, "two keys read together both stay"
