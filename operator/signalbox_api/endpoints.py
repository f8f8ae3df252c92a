"""Services and EndpointSlices as Signalbox reads them: ports, endpoints and their URLs.

Pure parsing of the Kubernetes objects, shared by the operator (to count ready endpoints) and
the router (to balance across them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from signalbox_api.provider import ServiceRef


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str | None


@dataclass(frozen=True)
class SliceEndpoint:
    address: str
    ready: bool
    ports: Mapping[str, int]  # slice port name ("" when unnamed) → port


def endpoint_url(svc: ServiceRef, endpoint: SliceEndpoint, port: ServicePort) -> str:
    """The base URL of one pod behind the Service."""
    number = endpoint.ports.get(port.name)
    if number is None:
        number = port.target_port if isinstance(port.target_port, int) else port.port
    host = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
    return f"{svc.scheme}://{host}:{number}{svc.path}"


def parse_service(body: Mapping[str, object]) -> list[ServicePort]:
    spec = body.get("spec")
    raw = spec.get("ports") if isinstance(spec, Mapping) else None
    out = []
    for p in raw if isinstance(raw, list) else []:
        target = p.get("targetPort")
        out.append(
            ServicePort(
                name=str(p.get("name") or ""),
                port=int(p["port"]),
                target_port=target if isinstance(target, int | str) else None,
            )
        )
    return out


def parse_slice(body: Mapping[str, object]) -> list[SliceEndpoint]:
    raw_ports = body.get("ports")
    ports = {
        str(p.get("name") or ""): int(p["port"])
        for p in (raw_ports if isinstance(raw_ports, list) else [])
        if isinstance(p, Mapping) and p.get("port") is not None
    }
    out = []
    raw = body.get("endpoints")
    for e in raw if isinstance(raw, list) else []:
        conds = e.get("conditions") or {}
        ready = conds.get("ready") is not False  # unset means ready, per the API
        out += [
            SliceEndpoint(address=str(a), ready=ready, ports=ports)
            for a in e.get("addresses") or []
        ]
    return out
