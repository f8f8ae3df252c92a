"""The router's hot path held to its bytecode budget: a count, the same on any machine, so a
change that makes every request execute more of the router's code fails here until the budget
in ``hack/bench_router_code.py`` is raised (and the commit says why)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parents[3] / "hack"


def test_a_plain_chat_request_stays_within_the_bytecode_budget() -> None:
    sys.path.insert(0, str(HACK))
    try:
        import bench_router_code
    finally:
        sys.path.remove(str(HACK))
    counted = asyncio.run(bench_router_code.count_bytecodes(50)).per_request(50)
    assert 1000 < counted <= bench_router_code.OPCODE_BUDGET, (
        f"{counted:.0f} bytecodes a request; the budget is {bench_router_code.OPCODE_BUDGET}"
    )
