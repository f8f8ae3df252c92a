"""``signalbox-check`` against fake providers of every wire format on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from signalbox_fake import FakeProvider, Faults, Flavor
from signalbox_operator.selftest import cli
from tests.support.cluster import REPO
from tests.support.router import router_env

KEY = "sk-check-0123456789"
CHAT = ["chat", "streaming", "tools", "jsonMode", "vision"]

CASES: dict[str, tuple[Flavor, str, list[dict[str, Any]]]] = {
    "OpenAI": (
        Flavor.OPENAI,
        "/v1",
        [
            {"name": "gpt-4o-mini", "capabilities": CHAT},
            {"name": "text-embedding-3-small", "capabilities": ["embeddings"]},
        ],
    ),
    "Anthropic": (
        Flavor.ANTHROPIC,
        "",
        [{"name": "claude-sonnet-4-5", "capabilities": ["chat", "streaming", "tools", "vision"]}],
    ),
    "Ollama": (
        Flavor.OLLAMA,
        "",
        [
            {"name": "llama3.2", "contextWindow": 65536},  # capabilities from /api/show
            {"name": "nomic-embed-text"},
        ],
    ),
    "VLLM": (
        Flavor.VLLM,
        "/v1",
        [{"name": "qwen", "capabilities": ["chat", "streaming", "tools"], "contextWindow": 8192}],
    ),
}


def manifest(tmp: Path, type_: str, url: str, models: list[dict[str, Any]], key: bool) -> Path:
    spec: dict[str, Any] = {"type": type_, "endpoint": {"url": url}, "models": models}
    docs: list[dict[str, Any]] = []
    if key:
        spec["auth"] = {"secretRef": {"name": "keys", "key": "api-key"}}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "keys"},
                "stringData": {"api-key": KEY},
            }
        )
    docs.insert(
        0,
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "LLMProvider",
            "metadata": {"name": type_.lower()},
            "spec": spec,
        },
    )
    path = tmp / f"{type_}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FakeProvider, Path]]:
    type_ = str(request.param)
    flavor, suffix, models = CASES[type_]
    names = [m["name"] for m in models]
    with FakeProvider("p", flavor, names, faults=Faults(api_key=KEY)).running_in_thread() as fake:
        key = type_ in ("OpenAI", "Anthropic")
        if not key:
            fake.set_faults()
        yield fake, manifest(tmp_path, type_, fake.url + suffix, models, key)


def test_every_check_the_capabilities_call_for(
    case: tuple[FakeProvider, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, path = case
    out_file = tmp_path / "report.json"
    code = cli.main(["-f", str(path), "--json", str(out_file), "--timeout", "20"])
    printed = capsys.readouterr().out
    report = json.loads(out_file.read_text())
    checks = {c["check"]: c for c in report["checks"]}
    assert code == 0, printed
    assert report["passed"] is True
    assert checks["listModels"]["passed"] is True
    assert checks["chat"]["passed"] is True
    assert checks["streaming"]["passed"] is True
    assert checks["streaming"]["ttftMs"] is not None
    assert checks["tools"]["passed"] is True
    assert KEY not in printed
    assert KEY not in out_file.read_text()
    assert printed.splitlines()[0].split()[:5] == ["CHECK", "RESULT", "MODEL", "LATENCY", "TTFT"]
    requested = {s.path for s in fake.seen}
    if path.stem == "OpenAI":
        assert checks["jsonMode"]["passed"] is True
        assert checks["vision"]["passed"] is True
        assert checks["embeddings"]["passed"] is True
        assert checks["contextWindow"]["passed"] is None  # nothing declared: skipped
    if path.stem == "Anthropic":
        assert "/v1/messages" in requested
        assert checks["embeddings"]["passed"] is None
    if path.stem == "Ollama":
        assert "/api/chat" in requested
        assert checks["embeddings"]["passed"] is True  # capability discovered by /api/show
        assert checks["contextWindow"]["passed"] is True  # 131072 reported >= 65536 declared


def test_failures_and_a_context_window_too_small_exit_1(tmp_path: Path) -> None:
    models = [{"name": "qwen", "capabilities": ["chat", "streaming"], "contextWindow": 65536}]
    with FakeProvider("p", Flavor.VLLM, ["qwen"]).running_in_thread() as fake:
        path = manifest(tmp_path, "VLLM", fake.url + "/v1", models, key=False)
        fake.set_faults(status=500, times=1)  # the readiness check of listModels fails once
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "signalbox_operator.selftest.cli",
                "-f",
                str(path),
                "--json",
                "-",
            ],
            capture_output=True,
            text=True,
            env=router_env(),
            cwd=REPO,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, proc.stderr
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["listModels"]["passed"] is False
    assert "500" in checks["listModels"]["message"]
    assert checks["chat"]["passed"] is True
    assert checks["contextWindow"]["passed"] is None  # the failed listing reported nothing


def test_missing_secret_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, "OpenAI", "http://127.0.0.1:9/v1", [{"name": "m"}], key=True)
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] != "Secret"]
    path.write_text(yaml.safe_dump_all(docs))
    assert cli.main(["-f", str(path)]) == 2
    assert "SecretNotFound" in capsys.readouterr().err
