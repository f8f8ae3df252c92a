"""Runs the real router in manifests mode as a separate process, and builds its manifests.

A test writes LLMProvider, RoutingPolicy and Secret documents into a folder (the builders below
give the camelCase YAML the CRDs take), starts ``python -m signalbox_router --manifests DIR`` on a
free loopback port and talks HTTP to it. The router re-reads the folder within about two seconds
of a change; :meth:`RouterProcess.reload` writes and waits for that.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from signalbox_fake import FakeProvider
from tests.support.cluster import REPO
from tests.support.operator import environ_without_proxy, free_port, stop_process, wait_for

API_VERSION = "signalbox.dev/v1alpha1"
RELOADED = "reloaded manifests"
KEPT = "keeping the previous manifests"
Doc = dict[str, Any]


def provider(
    name: str,
    type_: str,
    url: str,
    *,
    models: Sequence[str | Mapping[str, Any]] = (),
    secret: tuple[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> Doc:
    """An LLMProvider; ``secret`` is (Secret name, key); ``spec`` takes camelCase fields."""
    body: Doc = {"type": type_, "endpoint": {"url": url}, **spec}
    if models:
        body["models"] = [{"name": m} if isinstance(m, str) else dict(m) for m in models]
    if secret is not None:
        body["auth"] = {"secretRef": {"name": secret[0], "key": secret[1]}}
    metadata: Doc = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": "LLMProvider", "metadata": metadata, "spec": body}


def policy(
    name: str, models: Sequence[str], providers: Sequence[str | Mapping[str, Any]], **spec: Any
) -> Doc:
    """A RoutingPolicy over ``providers`` (names, or refs with priority/weight/model)."""
    refs = [{"name": p} if isinstance(p, str) else dict(p) for p in providers]
    return {
        "apiVersion": API_VERSION,
        "kind": "RoutingPolicy",
        "metadata": {"name": name},
        "spec": {"models": list(models), "providers": refs, **spec},
    }


def secret(name: str, data: Mapping[str, str]) -> Doc:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def router_env() -> dict[str, str]:
    """The environment a router process runs with: no proxies, this checkout's packages."""
    return {**environ_without_proxy(), "PYTHONPATH": f"{REPO / 'router'}:{REPO / 'operator'}"}


def openai_error(resp: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The error object of an OpenAI-shaped error body (and nothing else in it), after checking
    the status when one is given."""
    if status is not None:
        assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    return error


def answers_as_router(url: str) -> bool:
    """Whether a router answers ``/healthz`` at ``url``: a 200 with the ``x-request-id`` only a
    router sends, so another test's process that took the port first (an operator's health
    endpoint, say) is not taken for it."""
    try:
        resp = httpx.get(url + "/healthz", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and "x-request-id" in resp.headers


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a port just freed by the OS)."""
    return f"http://127.0.0.1:{free_port()}/v1"


@dataclass
class RouterProcess:
    """``python -m signalbox_router --manifests folder`` on a free port; output to ``log_path``."""

    folder: Path
    log_path: Path
    args: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # added to ``router_env()``

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where an OpenAI SDK points."""
        return self.url + "/v1"

    def write(self, docs: Sequence[Doc], name: str = "resources.yaml") -> Path:
        """Write ``docs`` as one multi-document YAML file, replacing it atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        # Written beside the folder, then moved in: the router never sees a half-written file,
        # and no scratch file in the folder can set off a reload of the old contents.
        scratch = self.folder.parent / f".{self.folder.name}-{name}.tmp"
        scratch.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        scratch.replace(path)
        return path

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "signalbox_router",
            "--manifests",
            str(self.folder),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]

    def start(self, timeout: float = 20) -> RouterProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a port taken between the pick and the bind: pick another
            said_before = len(self.log())
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**router_env(), **self.env},
                    cwd=REPO,
                )
            try:
                wait_for(self._healthy, timeout, f"the router's /healthz (log: {self.log_path})")
            except AssertionError:
                if "address already in use" not in self.log()[said_before:]:
                    raise
                self.port = free_port(self.host)
                continue
            return self
        raise AssertionError(f"the router found no free port (log: {self.log_path})")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"the router exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
            )
        return answers_as_router(self.url)

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reload(
        self, docs: Sequence[Doc], name: str = "resources.yaml", timeout: float = 10
    ) -> None:
        """Write ``docs`` and wait until the router has read them (or refused them)."""
        before = self._reloads()
        time.sleep(0.01)  # a distinct modification time, even on coarse clocks
        self.write(docs, name)
        wait_for(lambda: self._reloads() > before, timeout, "the router to re-read its manifests")

    def _reloads(self) -> int:
        text = self.log()
        return text.count(RELOADED) + text.count(KEPT)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, trust_env=False, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, trust_env=False, **kwargs)

    def explain(self, model: str) -> dict[str, Any]:
        """``/v1/explain`` for ``model``: its eligible providers and why others are excluded."""
        resp = self.get("/v1/explain", params={"model": model})
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def excluded(self, model: str) -> dict[str, str]:
        """Excluded provider → reason, as ``/v1/explain`` reports them now."""
        return {e["provider"]: e["reason"] for e in self.explain(model)["excluded"]}

    def metrics(self) -> str:
        return self.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """The sample ``name`` whose labels include ``labels``; 0.0 when there is none."""
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, raw = series.partition("{")
            if metric != name:
                continue
            found = dict(part.split("=", 1) for part in raw.rstrip("}").split(",") if "=" in part)
            if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
                return float(value)
        return 0.0


@contextmanager
def running_router(
    folder: Path,
    docs: Sequence[Doc],
    *args: str,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[RouterProcess]:
    """A router serving ``docs`` (written to ``folder``) until the block ends; ``env``: added
    to its environment."""
    router = RouterProcess(
        folder, log_path or folder.parent / f"{folder.name}.log", args, env=env or {}
    )
    router.write(docs)
    try:
        yield router.start()
    finally:
        router.stop()


@contextmanager
def running_fakes(*fakes: FakeProvider) -> Iterator[tuple[FakeProvider, ...]]:
    """Serve every fake from its own background thread until the block ends."""
    with ExitStack() as stack:
        yield tuple(stack.enter_context(f.running_in_thread()) for f in fakes)


def tool_exchange(arguments: str) -> list[dict[str, Any]]:
    """Chat messages in which the assistant called a tool with ``arguments``, and it answered."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
