"""The operator's API calls wait their turn before their deadline starts: thousands of status
writes at once queue up instead of timing out in the queue."""

from __future__ import annotations

import asyncio
import threading
import time

import kubernetes
import pytest

from signalbox_operator import kube as kube_module
from signalbox_operator.kube import API_THREADS, Kube
from signalbox_operator.leadership.fencing import always_open
from signalbox_operator.metrics import Metrics


async def test_calls_beyond_the_pool_wait_their_turn_not_their_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kube_module, "WRITE_SECONDS", 1.0)
    k = Kube(kubernetes.client.ApiClient(), Metrics(), "op", always_open())
    busy, most = 0, 0
    lock = threading.Lock()

    def slow_call(**_: object) -> str:  # an API server that takes 0.3 s a request
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
        time.sleep(0.3)
        with lock:
            busy -= 1
        return "ok"

    started = time.monotonic()
    calls = 8 * API_THREADS  # 8 turns of 0.3 s: far past one call's 1 s deadline
    results = await asyncio.gather(*(k._call(slow_call) for _ in range(calls)))
    k.close()
    assert results == ["ok"] * calls, "none timed out waiting for its turn"
    assert most == API_THREADS
    assert time.monotonic() - started >= 8 * 0.3
