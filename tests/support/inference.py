"""Real inference servers for tests: llama.cpp's OpenAI-compatible server and Ollama, on loopback,
serving the tiny random-weight models ``hack/tiny_models.py`` writes.

``hack/build-inference.sh`` installs both once into ``~/.cache/signalbox`` (``hack/test.sh`` runs
it before the tests). A test that needs a server that is not installed fails and says how to
install it; only ``SIGNALBOX_SKIP_INFERENCE=1`` (for quick local runs) turns that into a skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import REPO
from tests.support.operator import environ_without_proxy, free_port, stop_process, wait_for

SKIP_ENV = "SIGNALBOX_SKIP_INFERENCE"
CHAT_MODEL = "tiny-chat"  # llama.cpp's aliases of the two files
EMBED_MODEL = "tiny-embed"
TOOLS_MODEL = "tiny-tools"  # the chat model's file again, with a tool-calling chat format
OLLAMA_CHAT = "tiny:latest"
OLLAMA_EMBED = "tiny-embed:latest"
CONTEXT = 512  # the chat model's context window on the llama.cpp server
_PINS = REPO / "hack" / "lib" / "inference.sh"


def _cache() -> Path:
    if cache := os.environ.get("SIGNALBOX_CACHE"):
        return Path(cache)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signalbox"


def _pin(name: str) -> str:
    found = re.search(rf'^{name}="([^"]+)"', _PINS.read_text(), re.MULTILINE)
    assert found, f"{name} is not pinned in {_PINS}"
    return found.group(1)


def llama_cpp_python() -> Path:
    """The python of llama-cpp-python's cached virtualenv (see hack/lib/inference.sh)."""
    venv = _cache() / f"llama-cpp-python-{_pin('LLAMA_CPP_PYTHON_VERSION')}"
    return _installed(venv / "bin" / "python", venv / ".signalbox-installed", "llama-cpp")


def ollama_binary() -> Path:
    binary = _cache() / "bin" / f"ollama-{_pin('OLLAMA_VERSION')}" / "ollama"
    return _installed(binary, binary, "ollama")


def _installed(path: Path, stamp: Path, server: str) -> Path:
    if stamp.exists():
        return path
    message = f"{server} is not installed: run hack/build-inference.sh {server} (hack/test.sh does)"
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{message}; skipped because {SKIP_ENV}=1")
    pytest.fail(message, pytrace=False)


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """The chat and the embedding GGUF model, written by hack/tiny_models.py into ``folder``."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "hack" / "tiny_models.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    chat, embed = proc.stdout.split()
    return Path(chat), Path(embed)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Server:
    """A running real server: ``url`` is its root, ``base_url`` where an OpenAI SDK points."""

    kind: str  # "llama.cpp" or "ollama"
    url: str
    chat_model: str
    embed_model: str
    log: Path
    tools_model: str | None = None  # a model that answers a forced tool call, if any

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def _started(proc: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{tail}")
        return _ok(url)

    wait_for(up, 60, f"{what} at {url} (log: {log})")


@contextmanager
def llama_cpp_server(folder: Path) -> Iterator[Server]:
    """llama-cpp-python's server with the tiny chat model (``tiny-chat``, n_ctx 512), the same
    file with the ``chatml-function-calling`` chat format (``tiny-tools``: a forced
    ``tool_choice`` is answered by a grammar-constrained call, even with random weights) and the
    embedding model (``tiny-embed``), on a free loopback port, until the block ends. The server
    loads the first model at start and swaps in another when a request names it."""
    python = llama_cpp_python()
    chat, embed = tiny_models(folder)
    port = free_port()
    common = {"n_ctx": CONTEXT, "n_threads": 1, "n_batch": CONTEXT, "verbose": False}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {"model": str(chat), "model_alias": CHAT_MODEL, **common},
            {"model": str(embed), "model_alias": EMBED_MODEL, "embedding": True, **common},
            {
                "model": str(chat),
                "model_alias": TOOLS_MODEL,
                "chat_format": "chatml-function-calling",
                **common,
            },
        ],
    }
    config_path = folder / "llama-server.json"
    config_path.write_text(json.dumps(config))
    log = folder / "llama-server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(python), "-m", "llama_cpp.server", "--config_file", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ_without_proxy(),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _started(proc, url + "/v1/models", log, "llama.cpp's server")
        yield Server("llama.cpp", url, CHAT_MODEL, EMBED_MODEL, log, TOOLS_MODEL)
    finally:
        stop_process(proc)


@contextmanager
def ollama_server(folder: Path) -> Iterator[Server]:
    """``ollama serve`` on a free loopback port with its models in ``folder``, and the tiny
    models created in it as ``tiny`` and ``tiny-embed``, until the block ends."""
    binary = ollama_binary()
    chat, embed = tiny_models(folder)
    port = free_port()
    env = {
        **environ_without_proxy(),
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(folder / "ollama-models"),
        "OLLAMA_NOPRUNE": "1",
        "OLLAMA_NUM_PARALLEL": "1",
        "HOME": str(folder),
    }
    log = folder / "ollama.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(binary), "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _started(proc, url + "/api/version", log, "ollama serve")
        for name, path in (("tiny", chat), ("tiny-embed", embed)):
            modelfile = folder / f"{name}.Modelfile"
            modelfile.write_text(f"FROM {path}\nPARAMETER num_ctx {CONTEXT}\n")
            created = subprocess.run(
                [str(binary), "create", name, "-f", str(modelfile)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert created.returncode == 0, created.stdout + created.stderr
        yield Server("ollama", url, OLLAMA_CHAT, OLLAMA_EMBED, log)
    finally:
        stop_process(proc)
