"""The README's main command: the local demo runs end to end and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess

from tests.support.cluster import REPO


def test_demo_runs_and_cleans_up() -> None:
    env = {**os.environ, "SIGNALBOX_CLUSTER": "pytest-demo"}
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "demo.sh"), "--no-wait"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:] + out[-3000:]
    assert "routingpolicy.signalbox.dev/chat-default" in out
    assert "x-signalbox-provider: flaky-vllm" in out
    assert "Hello from flaky-vllm. You said: Stream me a reply" in out
    assert "served by local-llama after 2 attempt(s)" in out
    assert "CircuitOpen" in out
    assert '"shared_budgets": {"mode": "shared"' in out  # the demo's router uses its Redis
    flaky = next(
        line
        for line in out.splitlines()
        if line.startswith("llmprovider.signalbox.dev/flaky-vllm") and "Open" in line
    )
    assert "False" in flaky.split()
    assert "nothing is left running" in out
    leftovers = subprocess.run(
        ["pgrep", "-f", "signalbox-demo"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
