"""What every test folder shares: how tests are spread over pytest-xdist workers
(``--dist loadgroup``). A module's tests stay in one worker, so a module-scoped fixture (three
routers and a Redis, say) is built once and its tests see it as they would in one process; the
tests that use a real inference server all share one worker, so that the machine runs one
llama.cpp and one Ollama server, not one per worker."""

from __future__ import annotations

import pytest

_INFERENCE_FIXTURES = frozenset({"llama_cpp", "ollama", "server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INFERENCE_FIXTURES & set(getattr(item, "fixturenames", ())):
            group = "inference"
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
