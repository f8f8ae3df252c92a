"""Fixtures for real inference servers (llama.cpp's OpenAI-compatible server, Ollama) with tiny
generated models, started once per test session; see tests/support/inference.py. A conftest
imports the ones its folder needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support import inference


@pytest.fixture(scope="session")
def llama_cpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[inference.Server]:
    with inference.llama_cpp_server(tmp_path_factory.mktemp("llama-cpp")) as server:
        yield server


@pytest.fixture(scope="session")
def ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[inference.Server]:
    with inference.ollama_server(tmp_path_factory.mktemp("ollama")) as server:
        yield server


@pytest.fixture(scope="module", params=["fake llamacpp", "llama.cpp"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[inference.Server]:
    """The conformance pair: the fake's ``llamacpp`` flavor, then the real llama.cpp server
    (test_conformance_ollama.py has its own pair, the fake's ``ollama`` flavor and Ollama)."""
    if request.param == "llama.cpp":
        yield request.getfixturevalue("llama_cpp")
        return
    models = [inference.CHAT_MODEL, inference.EMBED_MODEL, inference.TOOLS_MODEL]
    with FakeProvider("tiny", Flavor.LLAMACPP, models).running_in_thread() as fake:
        log = tmp_path_factory.mktemp("fake") / "none.log"
        yield inference.Server("fake", fake.url, models[0], models[1], log, models[2])
