"""A real Jaeger (all-in-one, v2) for tests: built once by hack/build-binaries.sh, on free
loopback ports, keeping traces in memory; and the traces it holds, read back through its query
API (``/api/traces``) as plain trees.

Its OTLP receivers (``otlp_http``, ``otlp_grpc``) are where a router, an operator and the fake
provider send spans (``OTEL_EXPORTER_OTLP_ENDPOINT``); nothing else of Jaeger's listens. With
``netns`` it runs inside that network namespace (the project's node's), on ``host`` there, where
the node's pods reach it; the tests read it back from inside the namespace too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.operator import free_port, stop_process, wait_for
from tests.support.tools import built


@dataclass(frozen=True)
class Span:
    """One span as Jaeger holds it: tags flattened to a dict, the parent's id (None: a root)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: int  # microseconds
    duration: int
    tags: dict[str, Any]
    events: tuple[str, ...]  # the names of the span's events (Jaeger's logs)
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each span it links to

    def tag(self, key: str) -> Any:
        return self.tags.get(key)


@dataclass
class Trace:
    spans: list[Span]

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def of(self, service: str) -> list[Span]:
        return sorted((s for s in self.spans if s.service == service), key=lambda s: s.start)

    def children(self, parent: Span) -> list[Span]:
        found = [s for s in self.spans if s.parent_id == parent.span_id]
        return sorted(found, key=lambda s: s.start)

    def root(self) -> Span:
        roots = [s for s in self.spans if s.parent_id not in {x.span_id for x in self.spans}]
        assert len(roots) == 1, [s.name for s in roots]
        return roots[0]


@dataclass
class Jaeger:
    folder: Path
    host: str = "127.0.0.1"
    netns: str | None = None  # a network namespace (``ip netns``) to run and be read in
    otlp_http: int = field(default_factory=free_port)
    otlp_grpc: int = field(default_factory=free_port)
    query: int = field(default_factory=free_port)
    health: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for OTLP over HTTP."""
        return f"http://{self.host}:{self.otlp_http}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.otlp_grpc}"

    def _inside(self) -> list[str]:
        """The command prefix that runs a command where Jaeger listens."""
        return [] if self.netns is None else ["nsenter", f"--net=/run/netns/{self.netns}"]

    def env(self, service: str, **more: str) -> dict[str, str]:
        """The environment a process exports its spans here with, as ``service``; spans leave
        at once (a short batch delay) so a test finds them soon."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_SERVICE_NAME": service,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **more,
        }

    def config(self) -> dict[str, Any]:
        local = self.host
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
            "extensions": {
                "jaeger_query": {
                    "storage": {"traces": "memory"},
                    "http": {"endpoint": f"{local}:{self.query}"},
                    "grpc": {"endpoint": f"{local}:{free_port()}"},
                },
                "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": 100000}}}},
                "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"{local}:{self.health}"}},
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"{local}:{self.otlp_grpc}"},
                        "http": {"endpoint": f"{local}:{self.otlp_http}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
        }

    def start(self) -> Jaeger:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "jaeger.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        binary = built("jaeger")
        with (self.folder / "jaeger.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*self._inside(), str(binary), f"--config=file:{config}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, 60, f"Jaeger's query API (log: {self.folder / 'jaeger.log'})")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.folder / "jaeger.log").read_text(errors="replace")
            raise AssertionError(f"jaeger exited with {self.proc.returncode}:\n{log[-3000:]}")
        return self._get("/api/services")[0] == 200

    def stop(self) -> None:
        stop_process(self.proc)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """Status and JSON body of a GET of the query API (0: nothing answered)."""
        url = str(httpx.URL(f"http://{self.host}:{self.query}{path}", params=params))
        if self.netns is None:
            try:
                resp = httpx.get(url, timeout=10)
            except httpx.HTTPError:
                return 0, None
            return resp.status_code, resp.json() if resp.status_code == 200 else None
        said = subprocess.run(
            [*self._inside(), sys.executable, "-c", _FETCH, url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        status, _, body = said.partition("\n")
        code = int(status) if status.isdigit() else 0
        return code, json.loads(body) if code == 200 else None

    def span(self, trace_id: str, span_id: str) -> Span | None:
        found = self.trace(trace_id)
        return next((s for s in found.spans if s.span_id == span_id), None) if found else None

    def services(self) -> list[str]:
        return list(self._json("/api/services")["data"] or [])

    def traces(self, service: str, **query: str) -> list[Trace]:
        """The traces holding a span of ``service`` (Jaeger's ``/api/traces`` search)."""
        params = {"service": service, "limit": "1000", "lookback": "1h", **query}
        found = self._json("/api/traces", params)
        return [_tree(t) for t in (found or {}).get("data") or []]

    def trace(self, trace_id: str) -> Trace | None:
        found = self._json(f"/api/traces/{trace_id}")
        data = (found or {}).get("data") or []
        return _tree(data[0]) if data else None

    def _json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The body of a GET; None for a 404 (nothing of that name yet)."""
        code, body = self._get(path, params)
        if code == 404:
            return None
        assert code == 200, f"Jaeger's query API answered {code} to {path}"
        return body

    def wait_trace(
        self, trace_id: str, *, spans: int, timeout: float = 20, service: str | None = None
    ) -> Trace:
        """Trace ``trace_id`` once it holds at least ``spans`` spans (of ``service``, if
        given): spans arrive in batches, each process's on its own."""

        def whole() -> Trace | None:
            found = self.trace(trace_id)
            if found is None:
                return None
            counted = found.spans if service is None else found.of(service)
            return found if len(counted) >= spans else None

        return wait_for(whole, timeout, f"{spans} spans of trace {trace_id} in Jaeger")


# Run inside the network namespace: print the status, a line break, the body.
_FETCH = """
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print(0)
"""


def _tree(data: Mapping[str, Any]) -> Trace:
    processes = {k: v["serviceName"] for k, v in data["processes"].items()}
    spans = []
    for s in data["spans"]:
        refs = s.get("references") or ()
        parents = [r["spanID"] for r in refs if r["refType"] == "CHILD_OF"]
        spans.append(
            Span(
                trace_id=s["traceID"],
                span_id=s["spanID"],
                parent_id=parents[0] if parents else None,
                name=s["operationName"],
                service=processes[s["processID"]],
                start=s["startTime"],
                duration=s["duration"],
                tags={t["key"]: t["value"] for t in s.get("tags") or ()},
                events=tuple(
                    str(f["value"])
                    for log in s.get("logs") or ()
                    for f in log.get("fields") or ()
                    if f["key"] == "event"
                ),
                links=tuple(
                    (r["traceID"], r["spanID"]) for r in refs if r["refType"] == "FOLLOWS_FROM"
                ),
            )
        )
    return Trace(spans)


@contextmanager
def running_jaeger(
    folder: Path, *, host: str = "127.0.0.1", netns: str | None = None
) -> Iterator[Jaeger]:
    jaeger = Jaeger(folder, host=host, netns=netns)
    try:
        yield jaeger.start()
    finally:
        jaeger.stop()
