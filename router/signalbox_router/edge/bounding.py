"""How the router's HTTP connections hold up against hostile clients.

uvicorn's httptools protocol buffers a request head without bound and waits for a slow head or
body for ever, so a few clients can take the process's memory and connection slots before any
key is checked. :class:`BoundedProtocol` adds, in the parser's own callbacks:

- a bound on the request head (request line and headers, in bytes) and on the number of
  headers: past either, ``431`` and the connection is closed; an unfinished head is counted as
  it arrives, so it never grows past the bound by more than one read;
- a head timeout (from the connection's start, or the next request's first byte) and a body
  timeout (from the end of the head): past either, ``408`` where an answer can still be sent,
  and the connection is closed;
- a client that goes away before its answer started cancels the work for it at once;
- an answer's head and the start of its body leave in one write (``coalescing``).

After a refusal the rest of the request is dropped as it arrives (nothing of it is kept) until
the client closes or :data:`LINGER` seconds pass.

A request that arrives whole in one read (nearly all of them) costs a few integer checks and no
timer. Errors are in the OpenAI shape, like every other answer of the router.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from signalbox_router.asgi import replies, sending
from signalbox_router.asgi.coalescing import HeadWithBody

_IDLE, _HEAD, _BODY, _REFUSED = 0, 1, 2, 3
# After a refusal, what the client still sends is read and dropped for this long before the
# connection closes: closing on unread data would reset it before the client reads the answer.
LINGER = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    body_timeout: float = 30.0


class _HeadTooLarge(Exception):
    """Raised inside a parser callback; the parser stops and reports it."""


def error_response(status: int, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 answer in the OpenAI error shape, closing the connection."""
    payload = replies.error_body(status, message, code=code)
    payload["error"]["type"] = "invalid_request_error"
    body = json.dumps(payload).encode()
    return b"".join(
        (
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


_BASE = HttpToolsProtocol


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded heads and read timeouts (see the module)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    _out: HeadWithBody  # the connection's transport, as the request cycle writes to it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._head_bytes = 0  # bytes read while the head was unfinished, earlier reads
        self._read = 0  # the size of the read being parsed
        self._refusal = 0  # the status to answer instead of the parser's 400
        self._timer: asyncio.TimerHandle | None = None
        self._request_task: asyncio.Task[None] | None = None  # the latest request's

    # The connection.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Answers leave with their head and body in one write (see coalescing).
        self.transport = self._out = HeadWithBody(transport, self.loop)
        # A connection that never sends a head is closed too.
        self._timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        # A client gone before its answer started: the work for it stops now (the attempt
        # closes its upstream and books the client's cancellation), cancelled with a message
        # that tells the application nobody is left to answer. A started stream has its own
        # watcher (sending.send_stream).
        cycle, task = self.cycle, self._request_task
        if cycle is not None and not cycle.response_started and task and not task.done():
            task.cancel(sending.CLIENT_GONE)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """As uvicorn starts the application for a request, keeping the task: the one to
        cancel should the client leave before its answer starts."""
        task = self._request_task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def data_received(self, data: bytes) -> None:
        if self._phase == _REFUSED:
            return
        self._read = len(data)
        _BASE.data_received(self, data)  # not super(): this runs per read
        phase = self._phase
        if phase == _HEAD:
            self._head_bytes += self._read
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, "The request's headers are too large.", "headers_too_large")
            elif self._timer is None:
                self._timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)
        elif phase == _BODY and self._timer is None:
            self._timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def send_400_response(self, msg: str) -> None:
        if self._refusal:
            self._refuse(self._refusal, "The request's headers are too large.", "headers_too_large")
        else:
            self._refuse(400, "We could not parse this HTTP request.", "invalid_http_request")

    # Parser callbacks.

    def on_message_begin(self) -> None:
        self._phase = _HEAD
        self._head_bytes = 0
        _BASE.on_message_begin(self)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        limits = self.limits
        # Only a head that may have outgrown the bound within this read is measured.
        if len(self.headers) > limits.max_headers or (
            self._head_bytes + self._read > limits.max_head_bytes
            and self._head_size() > limits.max_head_bytes
        ):
            self._refusal = 431
            raise _HeadTooLarge
        previous = self.cycle
        if previous is None or previous.response_complete:  # not behind a pipelined answer
            self._out.hold()
        _BASE.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _BASE.on_message_complete(self)

    # Helpers.

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) for name, value in self.headers)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer ``status``, end the request the application may be waiting on, and close
        once the client has had time to read the answer."""
        self._disarm()
        transport = self.transport
        if transport.is_closing() or self._phase == _REFUSED:
            return
        self._phase = _REFUSED
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # its receive() says so, and nothing more is sent
            cycle.message_event.set()
        transport.write(error_response(status, message, code))
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self.loop.call_later(LINGER, transport.close)

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._phase == _HEAD:
            self._refuse(408, "The request's headers took too long to arrive.", "request_timeout")
        else:  # nothing was sent: nobody to answer
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self._refuse(408, "The request's body took too long to arrive.", "request_timeout")
        else:
            self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[BoundedProtocol]:
    """The protocol class uvicorn should build connections with, for these limits."""
    return type("BoundedProtocol", (BoundedProtocol,), {"limits": limits})
