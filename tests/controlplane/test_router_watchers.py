"""The router's watchers never die: bad objects keep their last good version and are named, a
deleted manifests folder shows in /readyz at once and reading resumes when it is back, the
Kubernetes watch survives a non-UTF-8 Secret; and a router that cannot start says why in one
line."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from signalbox_fake import FakeProvider, Faults, Flavor
from tests.support.cluster import REPO, Cluster
from tests.support.operator import wait_for
from tests.support.router import RouterProcess, provider, router_env, running_fakes
from tests.support.router_process import KubeRouter

MODEL = "gpt-4o-mini"
KEY = "sk-upstream-key-7f3a"
MESSAGES = [{"role": "user", "content": "hi"}]


def _secret(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"k": value}}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- startup errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing-manifests", "--manifests {root}/absent: no such folder"),
        ("missing-keys-file", "--api-keys-file {root}/keys: cannot be read (No such file"),
        ("empty-keys-file", "--api-keys-file {root}/keys: holds no key"),
        ("missing-secrets-dir", "--secrets-dir {root}/absent: no such folder"),
        (
            "open-metrics-off-loopback",
            "--metrics-host 0.0.0.0 is not loopback while client API keys are required: "
            "pass --metrics-token-file FILE (or --no-metrics-auth)",
        ),
        ("empty-metrics-tokens", "--metrics-token-file {root}/tokens: holds no key"),
    ],
    ids=[
        "missing-manifests",
        "missing-keys-file",
        "empty-keys-file",
        "missing-secrets-dir",
        "open-metrics-off-loopback",
        "empty-metrics-tokens",
    ],
)
def test_a_router_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, setup: str, words: str
) -> None:
    router = RouterProcess(tmp_path / "manifests", tmp_path / "router.log")
    router.write([])
    command = router.command()
    if setup == "missing-manifests":
        command[command.index("--manifests") + 1] = str(tmp_path / "absent")
    elif setup == "missing-secrets-dir":
        command += ["--secrets-dir", str(tmp_path / "absent")]
    elif setup.endswith("metrics-off-loopback") or setup == "empty-metrics-tokens":
        (tmp_path / "keys").write_text("client-key-0123456789\n")
        (tmp_path / "tokens").write_text("\n")
        command += ["--api-keys-file", str(tmp_path / "keys"), "--metrics-port", "1"]
        command += ["--metrics-host", "0.0.0.0"]  # never bound: the router stops before
        if setup == "empty-metrics-tokens":
            command += ["--metrics-token-file", str(tmp_path / "tokens")]
    else:
        if setup == "empty-keys-file":
            (tmp_path / "keys").write_text("# no keys yet\n\n   \n")
        command += ["--api-keys-file", str(tmp_path / "keys")]
    done = subprocess.run(
        command, env=router_env(), cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"signalbox-router: {words.format(root=tmp_path)}")


# -- manifests mode --------------------------------------------------------------------------


def _readyz(router: RouterProcess) -> tuple[int, dict[str, Any]]:
    resp = router.get("/readyz")
    return resp.status_code, resp.json()


def test_the_folder_watch_survives_a_bad_secret_and_a_deleted_folder(tmp_path: Path) -> None:
    fake = FakeProvider("keyed", Flavor.OPENAI, [MODEL], faults=Faults(api_key=KEY))
    folder = tmp_path / "manifests"
    with running_fakes(fake):
        docs = [
            provider(
                "keyed", "OpenAICompatible", fake.base_url, models=[MODEL], secret=("creds", "k")
            ),
            _secret("creds", _b64(KEY.encode())),
        ]
        router = RouterProcess(folder, tmp_path / "router.log")
        router.write(docs)
        router.start()
        try:
            client = openai.OpenAI(base_url=router.base_url, api_key="x", max_retries=0)

            def ask() -> str | None:
                reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
                return reply.choices[0].message.content

            assert ask()
            assert _readyz(router)[0] == 200

            # A non-UTF-8 Secret: the last good key serves on, and the Secret is named.
            router.reload([docs[0], _secret("creds", _b64(b"\xff\xfe" + KEY.encode()))])
            assert ask(), "the previous key still reaches the provider"
            status, body = _readyz(router)
            assert status == 200
            assert any(
                "Secret creds: data.k is not UTF-8 text; keeping its previous version" in p
                for p in body["problems"]
            )
            assert "Secret creds: data.k is not UTF-8 text" in router.log()

            # A dangling symlink and bad YAML beside it change nothing that serves.
            (folder / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
            router.reload([{"kind": "LLMProvider", "spec": ["not", "a", "map"]}], name="x.yaml")
            (folder / "y.yaml").write_text("kind: [unclosed\n")
            wait_for(lambda: "y.yaml: not valid YAML" in router.log(), 10, "the YAML refused")
            assert "gone.yaml: cannot be read" in router.log()
            assert ask()

            # The folder is deleted (at once: file by file, the router could first read an
            # emptied folder, a valid reading with no manifests): /readyz says so at once, the
            # last manifests serve on.
            folder.rename(tmp_path / "deleted")
            wait_for(lambda: _readyz(router)[0] == 503, 10, "readyz to turn 503")
            body = _readyz(router)[1]
            assert "is missing" in body["reason"]
            assert "manifests" in body["failing"]
            assert ask()

            # It comes back with a changed provider: reading resumes and /readyz recovers.
            renamed = provider(
                "renamed", "OpenAICompatible", fake.base_url, models=[MODEL], secret=("creds", "k")
            )
            router.reload([renamed, _secret("creds", _b64(KEY.encode()))])
            wait_for(lambda: _readyz(router)[0] == 200, 10, "readyz to recover")
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
            assert raw.headers["x-signalbox-provider"] == "renamed"
            assert router.metric("signalbox_router_task_restarts_total", task="manifests") == 0
            assert KEY not in router.log()
            assert _b64(b"\xff\xfe" + KEY.encode()) not in router.log()
        finally:
            router.stop()


# -- Kubernetes mode -----------------------------------------------------------------------------


def _kube_provider(name: str, url: str, secret: str, priority: int) -> dict[str, Any]:
    return provider(
        name,
        "OpenAICompatible",
        url,
        models=[{"name": MODEL, "capabilities": ["chat"]}],
        secret=(secret, "k"),
        priority=priority,
    )


def _mark_ready(cluster: Cluster, namespace: str, name: str) -> None:
    """Write the Ready condition the operator would (no operator runs in this test)."""
    generation = cluster.get("llmp", name, namespace)["metadata"]["generation"]
    status = {
        "status": {
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    cluster.kubectl(
        "patch", "llmp", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip


def test_the_kubernetes_watch_survives_a_non_utf8_secret(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    good = FakeProvider("good", Flavor.OPENAI, [MODEL], faults=Faults(api_key=KEY))
    bad = FakeProvider("bad", Flavor.OPENAI, [MODEL], faults=Faults(api_key=KEY))
    with running_fakes(good, bad):
        cluster.apply(_secret("good-creds", _b64(KEY.encode())), namespace)
        # The API server takes any bytes in a Secret; this value is not UTF-8 text.
        cluster.apply(_secret("bad-creds", _b64(b"\xff\xfe\xfd")), namespace)
        cluster.apply(_kube_provider("bad", bad.base_url, "bad-creds", 10), namespace)
        cluster.apply(_kube_provider("good", good.base_url, "good-creds", 20), namespace)
        for name in ("bad", "good"):
            _mark_ready(cluster, namespace, name)
        router = KubeRouter(cluster, namespace, tmp_path / "router.log").start()
        try:
            client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)

            def served_by() -> str:
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model=MODEL, messages=MESSAGES
                    )
                except openai.NotFoundError:  # the router has not listed the providers yet
                    return ""
                return raw.headers["x-signalbox-provider"]

            # The preferred provider has no usable key: the other one serves.
            wait_for(lambda: served_by() == "good", 15, "traffic on the good provider")
            body = httpx_json(router.url + "/readyz")
            assert any(
                "Secret bad-creds (for LLMProvider bad): data.k is not UTF-8 text" in p
                for p in body["problems"]
            ), body
            log = (tmp_path / "router.log").read_text()
            assert "Secret bad-creds (for LLMProvider bad): data.k is not UTF-8 text" in log

            # The watch is alive: fixing the Secret moves traffic back to the preferred one.
            cluster.apply(_secret("bad-creds", _b64(KEY.encode())), namespace)
            wait_for(lambda: served_by() == "bad", 15, "traffic back on the fixed provider")
            assert "problems" not in httpx_json(router.url + "/readyz")
            assert KEY not in (tmp_path / "router.log").read_text()
        finally:
            router.stop()


def httpx_json(url: str) -> dict[str, Any]:
    import httpx

    body: dict[str, Any] = httpx.get(url, timeout=5, trust_env=False).json()
    return body
