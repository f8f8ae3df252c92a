"""The operator's writes to the API server: status patches and Events.

Calls go through the official kubernetes client in worker threads, off the event loop. Every
write is counted in metrics. Messages are built by the caller and never carry secrets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes

from signalbox_api import API_VERSION, GROUP, VERSION
from signalbox_operator.metrics import Metrics

log = logging.getLogger(__name__)
COMPONENT = "signalbox-operator"


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    plural: str
    namespace: str
    name: str
    uid: str | None = None


class Kube:
    """Thin async wrapper for the few API calls the operator makes itself."""

    def __init__(self, api: kubernetes.client.ApiClient, metrics: Metrics, identity: str) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._metrics = metrics
        self._identity = identity

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> bool:
        """Replace the object's status; False when the object is gone."""
        body = [{"op": "add", "path": "/status", "value": status}]
        try:
            await asyncio.to_thread(
                functools.partial(
                    self._custom.patch_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    body,
                    _content_type="application/json-patch+json",
                )
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        self._metrics.status_writes.labels(kind=plural).inc()
        return True

    async def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about one of our objects; failures are logged, not raised."""
        now = datetime.now(UTC).isoformat()
        namespace, name = ref.namespace, ref.name
        body: Any = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": ref.kind,
                "name": name,
                "namespace": namespace,
                "uid": ref.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._identity,
        }
        try:
            await asyncio.to_thread(self._core.create_namespaced_event, namespace, body)
        except kubernetes.client.ApiException as exc:
            log.warning(
                "could not post event %s for %s/%s: HTTP %s", reason, namespace, name, exc.status
            )
