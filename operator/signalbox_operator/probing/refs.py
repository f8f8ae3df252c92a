"""Resolves an LLMProvider's references (its Secret, its Service and EndpointSlices) from the
operator's in-memory indexes. Pure: the indexes are handed in as look-up functions.

- secret: (namespace, name) → {key: decoded value, or its size in bytes where the value is not
  held (too large to be an API key, or not referred to)}, or None
- service: (namespace, name) → [ServicePort], or None
- endpoints: (namespace, service name) → [SliceEndpoint], one per endpoint of every slice
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signalbox_api.api_keys import sendable
from signalbox_api.conditions import Reason
from signalbox_api.endpoints import (
    ServicePort,
    SliceEndpoint,
    endpoint_url,
    parse_service,
    parse_slice,
)
from signalbox_api.provider import EndpointCounts, LLMProviderSpec, ServiceRef
from signalbox_operator.status.provider_status import Refs

Key = tuple[str, str]
Reference = tuple[str, str, str]  # plural, namespace, name


MAX_KEY_BYTES = 8192  # larger than any API key: never read, and refused as one


@dataclass(frozen=True)
class SecretShape:
    """What the operator's index holds of a Secret: its version and the size of each key's
    value in bytes; never a value (``secret_values`` reads the ones providers refer to)."""

    version: str
    sizes: Mapping[str, int]


def secret_shape(version: str | None, data: Mapping[str, str]) -> SecretShape:
    """The shape of a Secret whose base64 ``data`` is at ``version``."""
    return SecretShape(
        str(version or ""), {k: len(v) * 3 // 4 - v.count("=") for k, v in data.items()}
    )


@dataclass(frozen=True)
class Lookups:
    secret: Callable[[Key], Mapping[str, str | int] | None]
    service: Callable[[Key], Sequence[ServicePort] | None]
    endpoints: Callable[[Key], Sequence[SliceEndpoint]]
    # The shape of a Secret, where values are read on demand (the operator); else None.
    shape: Callable[[Key], SecretShape | None] = lambda _key: None


def references(spec: Any, namespace: str) -> frozenset[Reference]:
    """The objects a provider's raw ``spec`` refers to, as (plural, namespace, name): its
    Secret, and for an in-cluster endpoint its Service and that Service's EndpointSlices (which
    the index keys by Service name). A change to any of them is worth a probe."""
    spec = spec if isinstance(spec, Mapping) else {}
    out: set[Reference] = set()
    auth = spec.get("auth")
    secret = auth.get("secretRef") if isinstance(auth, Mapping) else None
    if isinstance(secret, Mapping) and isinstance(secret.get("name"), str):
        out.add(("secrets", namespace, str(secret["name"])))
    endpoint = spec.get("endpoint")
    service = endpoint.get("service") if isinstance(endpoint, Mapping) else None
    if isinstance(service, Mapping) and isinstance(service.get("name"), str):
        name, ns = str(service["name"]), service.get("namespace")
        ns = ns if isinstance(ns, str) else namespace
        out.add(("services", ns, name))
        out.add(("endpointslices", ns, name))
    return frozenset(out)


def resolve(spec: LLMProviderSpec, namespace: str, lookups: Lookups) -> Refs:
    """What the provider's references point at now, or why they do not resolve."""
    api_key = None
    if spec.auth is not None:
        ref = spec.auth.secret_ref
        data = lookups.secret((namespace, ref.name))
        if data is None:
            return Refs(Reason.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} not found")
        if ref.key not in data:
            return Refs(
                Reason.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} has no key {ref.key!r}"
            )
        value = data[ref.key]
        if isinstance(value, int) and value <= MAX_KEY_BYTES:  # read when probed, not yet
            return Refs(
                Reason.SECRET_NOT_FOUND,
                f"Secret {namespace}/{ref.name} key {ref.key!r} could not be read yet (the "
                "operator's log says why)",
            )
        if isinstance(value, int) or len(value.encode()) > MAX_KEY_BYTES:
            size = value if isinstance(value, int) else len(value.encode())
            return Refs(
                Reason.INVALID_HEADER,
                f"Secret {namespace}/{ref.name} key {ref.key!r} holds {size} bytes: more than "
                f"an API key (at most {MAX_KEY_BYTES})",
            )
        api_key = value
        if not sendable(api_key):
            return Refs(
                Reason.INVALID_HEADER,
                f"Secret {namespace}/{ref.name} key {ref.key!r} cannot be sent in an HTTP "
                "header: it holds a line break, a control character or a non-ASCII character",
            )
    if spec.endpoint.url is not None:
        return Refs(base_url=spec.endpoint.url, api_key=api_key)
    if spec.endpoint.service is None:  # excluded by the schema; kept for the type checker
        return Refs(Reason.INVALID_SPEC, "no endpoint")
    return _resolve_service(spec.endpoint.service, namespace, lookups, api_key)


def _resolve_service(
    svc: ServiceRef, namespace: str, lookups: Lookups, api_key: str | None
) -> Refs:
    ns = svc.namespace or namespace
    ports = lookups.service((ns, svc.name))
    if ports is None:
        return Refs(Reason.SERVICE_NOT_FOUND, f"Service {ns}/{svc.name} not found")
    port = next((p for p in ports if p.port == svc.port), None)
    if port is None:
        return Refs(Reason.SERVICE_NOT_FOUND, f"Service {ns}/{svc.name} has no port {svc.port}")
    endpoints = list(lookups.endpoints((ns, svc.name)))
    ready = [e for e in endpoints if e.ready]
    counts = EndpointCounts(ready=len(ready), total=len(endpoints))
    urls = [endpoint_url(svc, e, port) for e in ready]
    if not urls:
        return Refs(
            Reason.NO_READY_ENDPOINTS,
            f"Service {ns}/{svc.name} has no ready endpoints ({counts.total} total)",
            endpoints=counts,
        )
    return Refs(
        base_url=urls[0],
        api_key=api_key,
        endpoints=counts,
        message=f"{counts.ready}/{counts.total} endpoints ready",
    )


__all__ = [
    "Lookups",
    "ServicePort",
    "SliceEndpoint",
    "endpoint_url",
    "parse_service",
    "parse_slice",
    "references",
    "resolve",
    "secret_shape",
]
