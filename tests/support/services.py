"""A Service and an EndpointSlice for backends that run on loopback, as in-cluster pods would.

The API server refuses loopback IPs in IPv4 slices; an FQDN slice may name them, and the
operator and the router read either kind alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def service(name: str, target_port: int) -> dict[str, Any]:
    """Service ``name``, port 80 (named http) to ``target_port``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": target_port}]},
    }


def endpoint_slice(service_name: str, port: int, ready: Mapping[str, bool]) -> dict[str, Any]:
    """The EndpointSlice ``<service_name>-1`` of ``service_name``: one endpoint per address in
    ``ready``, ready or not as it says."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-1",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "FQDN",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": up}} for address, up in ready.items()
        ],
    }
