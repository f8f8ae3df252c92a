"""A misbehaving upstream for tests: an HTTP server on loopback that answers each request with
what the test scripted for the request's model, byte for byte (redirects, compressed bodies,
malformed or endless streams, echoed keys), and records what it was sent and when a client
went away."""

from __future__ import annotations

import gzip
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behavior = Callable[["Handler"], None]


@dataclass(frozen=True)
class Seen:
    model: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            self.json: dict[str, Any] = json.loads(body)
            model = str(self.json.get("model"))
        except (ValueError, AttributeError):
            self.json, model = {}, ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.upstream.seen.append(Seen(model, self.path, headers, body))
        behavior = self.server.upstream.behaviors.get(model)
        if behavior is None:
            answer(self, 404, {"error": {"message": "no script", "type": "not_found"}})
            return
        behavior(self)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: ScriptedUpstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is what several scripts are for: not an error."""


@dataclass
class ScriptedUpstream:
    behaviors: dict[str, Behavior]
    seen: list[Seen] = field(default_factory=list)
    gone_at: dict[str, float] = field(default_factory=dict)  # model -> when its client left
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_for(self, model: str) -> list[Seen]:
        return [s for s in self.seen if s.model == model]

    @contextmanager
    def running(self) -> Iterator[ScriptedUpstream]:
        server = _Server(("127.0.0.1", 0), Handler)
        server.upstream = self
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


# -- behaviors ----------------------------------------------------------------------------------


def answer(
    h: Handler,
    status: int,
    body: Any,
    headers: Sequence[tuple[str, str]] = (),
    *,
    raw: bytes | None = None,
) -> None:
    data = raw if raw is not None else json.dumps(body).encode()
    h.send_response(status)
    h.send_header("content-type", "application/json")
    for name, value in headers:
        h.send_header(name, value)
    h.send_header("content-length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def json_answer(body: Any, status: int = 200, *, raw: bytes | None = None) -> Behavior:
    return lambda h: answer(h, status, body, raw=raw)


def redirect(status: int, location: str) -> Behavior:
    return lambda h: answer(h, status, {}, [("location", location)], raw=b"")


def gzipped(body: Any) -> Behavior:
    data = gzip.compress(json.dumps(body).encode())
    return lambda h: answer(h, 200, None, [("content-encoding", "gzip")], raw=data)


def chunked_json(body: Any, pieces: int = 50) -> Behavior:
    """A JSON answer without a declared length, sent in many chunks."""
    data = json.dumps(body).encode()
    step = max(1, len(data) // pieces)

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for i in range(0, len(data), step):
            _chunk(h, data[i : i + step])
        h.wfile.write(b"0\r\n\r\n")

    return run


def _chunk(h: Handler, data: bytes) -> None:
    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.flush()


def stream(events: Sequence[bytes], *, end: bool = True, pause: float = 0.0) -> Behavior:
    """An SSE answer of ``events`` (each written as is, in its own chunk); without ``end`` the
    connection is cut instead of closing the chunked body."""

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for event in events:
            _chunk(h, event)
            time.sleep(pause)
        if end:
            h.wfile.write(b"0\r\n\r\n")
        h.close_connection = True

    return run


def stall(seconds: float, then: Behavior) -> Behavior:
    def run(h: Handler) -> None:
        time.sleep(seconds)
        then(h)

    return run


def endless(model: str, upstream: ScriptedUpstream, every: float = 0.02) -> Behavior:
    """An SSE stream that never ends; records when the client left (a write failed)."""

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        try:
            for _ in range(int(60 / every)):
                _chunk(h, chunk_event(model, "tick "))
                time.sleep(every)
        except OSError:
            upstream.gone_at[model] = time.monotonic()
        h.close_connection = True

    return run


def held(model: str, upstream: ScriptedUpstream, seconds: float = 60.0) -> Behavior:
    """Sends nothing back, for up to ``seconds``; records when the client closed the
    connection."""

    def run(h: Handler) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([h.connection], [], [], 0.01)
            if readable and not h.connection.recv(1, socket.MSG_PEEK):
                upstream.gone_at[model] = time.monotonic()
                break
        h.close_connection = True

    return run


def chunk_event(model: str, text: str | None, finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    event = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [choice],
        **extra,
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def sse_data(payload: Any) -> bytes:
    """One SSE event carrying ``payload`` as JSON."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def anthropic_event(payload: dict[str, Any]) -> bytes:
    """One event of an Anthropic Messages stream, named after its type."""
    return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(), json.dumps(payload).encode())


def completion(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        **extra,
    }
