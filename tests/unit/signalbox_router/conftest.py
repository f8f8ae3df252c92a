"""A fake OpenAI provider for the unit tests that run the router's application in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signalbox_fake import FakeProvider

MODEL = "gpt-4o-mini"  # the one model it serves


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider("up", "openai", [MODEL]).running_in_thread() as running:
        yield running
