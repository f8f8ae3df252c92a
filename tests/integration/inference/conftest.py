"""Real inference servers (llama.cpp's OpenAI-compatible server, Ollama) with tiny generated
models, started once per test session; see tests/support/inference.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import inference


@pytest.fixture(scope="session")
def llama_cpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[inference.Server]:
    with inference.llama_cpp_server(tmp_path_factory.mktemp("llama-cpp")) as server:
        yield server


@pytest.fixture(scope="session")
def ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[inference.Server]:
    with inference.ollama_server(tmp_path_factory.mktemp("ollama")) as server:
        yield server
