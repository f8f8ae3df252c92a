"""Hostile clients against the real router process, over real HTTP on loopback.

Heads too large or with too many headers are refused with 431, slow heads and bodies are cut
off with 408, unfinished huge heads do not grow the process's memory, deeply nested JSON is
refused before a provider's limiter slot is taken, client-chosen model names do not grow the
metrics, and ``/metrics`` needs a key on the public port when client keys are set.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.operator import free_port
from tests.support.router import (
    RouterProcess,
    openai_error,
    policy,
    provider,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"
ALIAS = "mini"
GLOB = "rand-*"
POLICY = "chat-default"  # maps to the provider's MODEL, so the body is re-encoded
MESSAGES = [{"role": "user", "content": "hi"}]
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEAD = 64 * 1024  # the defaults
MAX_HEADERS = 100
CLIENT_KEY = "sbx-hostile-client-key"

RANDOM_NAMES = 4_000  # each a series if labels were not bounded


@dataclass
class World:
    router: RouterProcess
    fake: FakeProvider

    @property
    def pid(self) -> int:
        assert self.router.proc is not None
        return self.router.proc.pid


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fake = FakeProvider("upstream", Flavor.OPENAI, [MODEL])
    with running_fakes(fake):
        docs = [
            provider(
                "upstream",
                "OpenAICompatible",
                fake.base_url,
                models=[{"name": MODEL, "aliases": [ALIAS]}],
                rateLimit={"maxConcurrency": 2},
            ),
            policy(POLICY, [POLICY, GLOB], [{"name": "upstream", "model": MODEL}]),
        ]
        folder = tmp_path_factory.mktemp("router-hostile") / "manifests"
        with running_router(folder, docs) as router:
            yield World(router, fake)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A router with short head and body timeouts."""
    fake = FakeProvider("patient", Flavor.OPENAI, [MODEL])
    with running_fakes(fake):
        docs = [provider("patient", "OpenAICompatible", fake.base_url, models=[MODEL])]
        folder = tmp_path_factory.mktemp("router-impatient") / "manifests"
        args = ("--header-timeout", str(HEAD_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT))
        with running_router(folder, docs, *args) as router:
            yield World(router, fake)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the router closed the connection after answering
    seconds: float  # from the last byte sent to the end of the answer

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/json"
        payload = json.loads(self.body)
        assert set(payload) == {"error"}
        error: dict[str, Any] = payload["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        return error


def exchange(port: int, *parts: bytes, pause: float = 0.0, wait: float = 10.0) -> Answer:
    """Send ``parts`` on a fresh connection (``pause`` seconds apart) and read one answer and
    whether the connection is closed after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:
                break  # cut off while sending: the answer, if any, is still read
        sent = time.monotonic()
        data = b""
        closed = False
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                closed = True
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and len(body) >= _content_length(head):
                closed = _closed_soon(sock)
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0] else 0
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(status, headers, body, closed, time.monotonic() - sent)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _closed_soon(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def request(*headers: bytes, method: bytes = b"GET", path: bytes = b"/healthz") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: router\r\n%s\r\n" % (
        method,
        path,
        b"".join(h + b"\r\n" for h in headers),
    )


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def held_connections(pid: int, client_ports: set[int]) -> int:
    """How many of the connections from ``client_ports`` process ``pid`` holds a socket of
    (its other sockets, which come and go with other traffic, not counted)."""
    inodes = {
        link[len("socket:[") : -1]
        for link in (os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir())
        if link.startswith("socket:[")
    }
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) in client_ports:
                held += 1
    return held


# Heads.


def test_a_head_within_the_bounds_is_served(world: World) -> None:
    filler = [b"x-fill-%d: %s" % (i, b"a" * 500) for i in range(MAX_HEADERS - 2)]
    # With Host and Connection, 100 headers and about 52 KiB.
    answer = exchange(world.router.port, request(b"connection: close", *filler))
    assert answer.status == 200, answer.body


def test_an_oversized_header_is_431_and_closes(world: World) -> None:
    answer = exchange(world.router.port, request(b"x-big: " + b"a" * (MAX_HEAD + 1)))
    assert answer.status == 431
    assert answer.error()["code"] == "headers_too_large"
    assert answer.error()["type"] == "invalid_request_error"
    assert answer.closed


def test_too_many_headers_is_431_and_closes(world: World) -> None:
    many = [b"x-h-%d: y" % i for i in range(MAX_HEADERS)]  # and Host: one too many
    answer = exchange(world.router.port, request(*many))
    assert answer.status == 431
    assert answer.error()["code"] == "headers_too_large"
    assert answer.closed


def test_an_oversized_header_through_httpx_is_431(world: World) -> None:
    resp = world.router.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES},
        headers={"x-big": "a" * (2 * MAX_HEAD)},
    )
    assert openai_error(resp, 431)["code"] == "headers_too_large"


def test_unfinished_huge_heads_do_not_grow_memory(world: World) -> None:
    """40 clients each start an 8 MB header and never finish it."""
    pid = world.pid
    before = rss_kib(pid)
    chunk = b"a" * (256 * 1024)

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", world.router.port)
        try:
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nX-Big: ")
            for _ in range(32):  # 8 MB, never ended
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass  # cut off: what it read so far is still there
        try:
            return await asyncio.wait_for(reader.read(4096), 10)
        except OSError:
            return b""
        finally:
            writer.close()

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(40)))

    answers = asyncio.run(all_of_them())
    peak = rss_kib(pid, "VmHWM")
    growth_mib = (max(peak, before) - before) / 1024
    assert growth_mib < 50, f"RSS grew by {growth_mib:.0f} MiB (from {before // 1024} MiB)"
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 431 ")]
    assert len(refused) >= 30, answers[:3]
    assert httpx.get(world.router.url + "/healthz", trust_env=False).status_code == 200


# Slow clients (the router waits HEAD_TIMEOUT for a head, BODY_TIMEOUT for a body).


def test_a_trickled_head_is_408_and_closed(impatient: World) -> None:
    parts = [b"POST /v1/chat/completions HTTP/1.1\r\n"] + [b"x-slow: 1\r\n"] * 20
    answer = exchange(impatient.router.port, *parts, pause=0.2)
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert answer.closed


def test_a_silent_connection_is_closed(impatient: World) -> None:
    started = time.monotonic()
    answer = exchange(impatient.router.port)
    assert answer.closed
    assert answer.status == 0  # nothing was asked, nothing answered
    assert time.monotonic() - started < HEAD_TIMEOUT + 5


def test_a_trickled_body_is_408_and_closed(impatient: World) -> None:
    body = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
    head = request(
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        method=b"POST",
        path=b"/v1/chat/completions",
    )
    before = len(impatient.fake.seen)
    answer = exchange(
        impatient.router.port, head, *(body[i : i + 1] for i in range(len(body))), pause=0.2
    )
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert answer.closed
    assert len(impatient.fake.seen) == before


def test_slow_clients_give_their_connections_back(impatient: World) -> None:
    pid = impatient.pid
    socks = [socket.create_connection(("127.0.0.1", impatient.router.port)) for _ in range(30)]
    ports = {sock.getsockname()[1] for sock in socks}
    try:
        for i, sock in enumerate(socks):
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n" if i % 2 else b"")
        accepted = time.monotonic() + HEAD_TIMEOUT / 2  # well before any is timed out
        while held_connections(pid, ports) < 30 and time.monotonic() < accepted:
            time.sleep(0.05)  # a busy machine: the router takes them in as it gets to them
        assert held_connections(pid, ports) == 30
        deadline = time.monotonic() + HEAD_TIMEOUT + 10
        while held_connections(pid, ports) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert held_connections(pid, ports) == 0
    finally:
        for sock in socks:
            sock.close()


# Bodies.


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [64, 300], ids=["just over", "far over"])
def test_deep_json_is_400_and_the_limiter_stays_usable(world: World, depth: int) -> None:
    # The body itself is one level: 64 levels inside it make 65.
    before = len(world.fake.seen)
    deep = {"model": POLICY, "messages": MESSAGES, "metadata": _nested(depth)}
    for _ in range(4):  # more than maxConcurrency
        resp = world.router.post("/v1/chat/completions", content=json.dumps(deep).encode())
        error = openai_error(resp, 400)
        assert error["code"] == "invalid_request"
        assert "64 levels" in error["message"]
    assert len(world.fake.seen) == before

    async def three_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=world.router.url, trust_env=False) as client:
            body = {"model": POLICY, "messages": MESSAGES}
            calls = (client.post("/v1/chat/completions", json=body, timeout=10) for _ in range(3))
            return await asyncio.gather(*calls)

    assert [r.status_code for r in asyncio.run(three_at_once())] == [200] * 3


def test_json_nested_within_the_bound_is_served(world: World) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "metadata": _nested(62)}
    resp = world.router.post("/v1/chat/completions", content=json.dumps(body).encode())
    assert resp.status_code == 200, resp.text


# Metrics.


def _series(text: str, metric: str) -> set[tuple[str, str]]:
    out = set()
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            labels = dict(
                part.split("=", 1) for part in line[len(metric) + 1 : line.index("}")].split(",")
            )
            out.add((labels["model"].strip('"'), labels["code"].strip('"')))
    return out


@pytest.mark.timeout(300)
def test_random_model_names_leave_the_metrics_bounded(world: World) -> None:
    rng = random.Random(9)
    names = ["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(RANDOM_NAMES)]
    names[::2] = [f"rand-{n}" for n in names[::2]]  # half match the policy's glob

    async def ask_all() -> list[int]:
        codes: list[int] = []
        todo = iter(names)
        async with httpx.AsyncClient(base_url=world.router.url, trust_env=False, timeout=30) as c:

            async def worker() -> None:
                for name in todo:
                    body = {"model": name, "messages": MESSAGES}
                    codes.append((await c.post("/v1/chat/completions", json=body)).status_code)

            await asyncio.gather(*(worker() for _ in range(16)))
        return codes

    codes = asyncio.run(ask_all())
    assert codes.count(200) == RANDOM_NAMES // 2  # the glob's
    assert codes.count(404) == RANDOM_NAMES // 2  # the rest name no model
    assert (
        world.router.post(
            "/v1/chat/completions", json={"model": ALIAS, "messages": MESSAGES}
        ).status_code
        == 200
    )

    series = _series(world.router.metrics(), "signalbox_router_requests_total")
    models = {model for model, _ in series}
    assert models <= {MODEL, ALIAS, POLICY, GLOB, "other"}, models
    assert GLOB in models
    assert ALIAS in models
    assert world.router.metric("signalbox_router_requests_total", model=GLOB) >= RANDOM_NAMES // 2
    usage = world.router.get("/v1/usage").json()["data"]
    assert {row["model"] for row in usage} <= {MODEL, ALIAS, POLICY, GLOB, "other"}


# Client keys and /metrics.


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, int]]:
    fake = FakeProvider("keyed", Flavor.OPENAI, [MODEL])
    root = tmp_path_factory.mktemp("router-hostile-keys")
    keys = root / "client-keys"
    keys.write_text(CLIENT_KEY + "\n")
    metrics_port = free_port()
    with running_fakes(fake):
        docs = [provider("keyed", "OpenAICompatible", fake.base_url, models=[MODEL])]
        args = ("--api-keys-file", str(keys), "--metrics-port", str(metrics_port))
        with running_router(root / "manifests", docs, *args) as router:
            yield router, metrics_port


def test_with_client_keys_metrics_are_not_open_on_the_public_port(
    keyed: tuple[RouterProcess, int],
) -> None:
    router, metrics_port = keyed
    assert openai_error(router.get("/metrics"), 401)["code"] == "invalid_api_key"
    keyed_scrape = router.get("/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert keyed_scrape.status_code == 200
    assert "signalbox_router_attempts" in keyed_scrape.text
    scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False, timeout=10)
    assert scrape.status_code == 200
    assert "signalbox_router_attempts" in scrape.text
    elsewhere = httpx.get(f"http://127.0.0.1:{metrics_port}/v1/models", trust_env=False)
    assert openai_error(elsewhere, 404)["code"] == "unknown_url"


def test_a_metrics_port_with_tokens_serves_only_a_token_holder(tmp_path: Path) -> None:
    fake = FakeProvider("tokened", Flavor.OPENAI, [MODEL])
    keys, tokens = tmp_path / "client-keys", tmp_path / "metrics-tokens"
    keys.write_text(CLIENT_KEY + "\n")
    tokens.write_text("# Prometheus's\nmetrics-token-0123456789\n")
    port = free_port()
    args = ("--api-keys-file", str(keys), "--metrics-port", str(port),
            "--metrics-token-file", str(tokens))  # fmt: skip
    with running_fakes(fake):
        docs = [provider("tokened", "OpenAICompatible", fake.base_url, models=[MODEL])]
        with running_router(tmp_path / "manifests", docs, *args):
            url = f"http://127.0.0.1:{port}/metrics"

            def scrape(token: str | None) -> httpx.Response:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                return httpx.get(url, headers=headers, trust_env=False, timeout=10)

            assert openai_error(scrape(None), 401)["code"] == "invalid_api_key"
            assert openai_error(scrape(CLIENT_KEY), 401)["code"] == "invalid_api_key"
            allowed = scrape("metrics-token-0123456789")
            assert allowed.status_code == 200
            assert "signalbox_router_attempts" in allowed.text


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_bearer_scheme_is_matched_case_insensitively(
    keyed: tuple[RouterProcess, int], scheme: str
) -> None:
    router, _ = keyed
    resp = router.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES},
        headers={"authorization": f"{scheme} {CLIENT_KEY}"},
    )
    assert resp.status_code == 200, resp.text
    wrong = router.get("/v1/models", headers={"authorization": f"{scheme} {CLIENT_KEY}x"})
    assert openai_error(wrong, 401)["code"] == "invalid_api_key"
