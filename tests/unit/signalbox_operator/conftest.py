"""Fixtures the operator's unit tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.misbehaving import Misbehaving


@pytest.fixture
async def server() -> AsyncIterator[Misbehaving]:
    """A provider that misbehaves on request (``Misbehaving.url(behaviour, name)``), on loopback."""
    s = Misbehaving()
    await s.start()
    yield s
    await s.stop()
