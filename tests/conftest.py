"""What every test folder shares: tests that use a real inference server run in one pytest-xdist
worker (``--dist loadgroup``), so that the machine runs one llama.cpp and one Ollama server, not
one per worker."""

from __future__ import annotations

import pytest

_INFERENCE_FIXTURES = frozenset({"llama_cpp", "ollama", "server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INFERENCE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("inference"))
