"""A real ``redis-server`` for tests: on a free loopback port, a scratch folder, no persistence.

Tests never assume one is running: :func:`ensure_installed` installs Debian's ``redis-server``
package when the binary is missing and the tests run as root (as in CI), and every test module
starts its own instance. ``pause``/``resume`` (SIGSTOP/SIGCONT) make it slow to answer;
``stop``/``start`` make it go away and come back empty, as a restarted Redis does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.operator import free_port, stop_process, wait_for


def ensure_installed() -> str:
    """The path of ``redis-server``, installing the Debian package first if need be."""
    found = shutil.which("redis-server")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True,
            env=env,
            capture_output=True,
        )
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    return found


@dataclass
class RedisServer:
    folder: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()  # more redis-server options: --requirepass, --maxmemory, ...
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            ensure_installed(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            *self.extra,
        ]  # fmt: skip
        with (self.folder / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.answers, 10, f"redis-server on port {self.port}")
        return self

    def answers(self) -> bool:
        """True when Redis answers PING within a second."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                said = s.recv(64)
                return said.startswith(b"+PONG") or said.startswith(b"-NOAUTH")
        except OSError:
            return False

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        stop_process(self.proc)
