"""A loopback HTTP server of misbehaving providers, for probes that must stay bounded.

The first path segment picks the behaviour, the second names the provider, so one server
plays any number of providers: ``http://127.0.0.1:PORT/endless/p7`` is provider p7 sending
a body that never ends. Every request is recorded with its arrival time per provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator

CHUNK = b"x" * 65536
HUGE = 50 * 1024 * 1024
BOMB_SIZE = 64 * 1024 * 1024


def model_list(ids: list[object]) -> bytes:
    return json.dumps({"object": "list", "data": [{"id": i} for i in ids]}).encode()


BAD_IDS: list[object] = [None, "", "x" * 300, 7, {"id": "nested"}, "fine-1", "fine-1"]
MANY_IDS = [f"model-{i:05d}" for i in range(2000)]


@functools.cache
def _bomb() -> bytes:
    """A gzip body of a few hundred kilobytes that inflates to BOMB_SIZE bytes."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    out = [squeeze.compress(block) for _ in range(BOMB_SIZE // len(block))]
    return b"".join([*out, squeeze.flush()])


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Misbehaving:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.seen: dict[str, list[float]] = defaultdict(list)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def url(self, behaviour: str, provider: str) -> str:
        return f"http://{self.host}:{self.port}/{behaviour}/{provider}"

    def gaps(self, behaviour: str, provider: str, after: float = 0.0) -> list[float]:
        times = [t for t in self.seen[f"{behaviour}/{provider}"] if t >= after]
        return [b - a for a, b in itertools.pairwise(times)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            parts = path.split("?")[0].strip("/").split("/")
            behaviour = parts[0]
            self.seen[f"{behaviour}/{parts[1] if len(parts) > 1 else ''}"].append(time.monotonic())
            await self._behaviours()[behaviour](writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, KeyError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _behaviours(self) -> dict[str, Callable[[asyncio.StreamWriter], Awaitable[None]]]:
        return {
            "ok": lambda w: self._json(w, model_list(["m1", "m2"])),
            "badids": lambda w: self._json(w, model_list(BAD_IDS)),
            "many": lambda w: self._json(w, model_list(MANY_IDS)),
            "endless": self._endless,
            "huge": self._huge,
            "hang": self._hang,
            "drip": self._drip,
            "bomb": self._gzip_bomb,
            "redirect": self._redirect,
        }

    async def _json(self, w: asyncio.StreamWriter, body: bytes) -> None:
        w.write(
            _head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body))})
        )
        w.write(body)
        await w.drain()

    async def _endless(self, w: asyncio.StreamWriter) -> None:
        w.write(
            _head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        )
        frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
        while True:
            w.write(frame)
            await w.drain()

    async def _huge(self, w: asyncio.StreamWriter) -> None:
        w.write(_head("200 OK", {"Content-Type": "application/json", "Content-Length": str(HUGE)}))
        block = CHUNK * 16
        for _ in range(HUGE // len(block)):
            w.write(block)
            await w.drain()

    async def _hang(self, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def _drip(self, w: asyncio.StreamWriter) -> None:
        w.write(_head("200 OK", {"Content-Type": "application/json", "Content-Length": "1000000"}))
        while True:
            w.write(b" ")
            await w.drain()
            await asyncio.sleep(0.2)

    async def _gzip_bomb(self, w: asyncio.StreamWriter) -> None:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Content-Length": str(len(_bomb())),
        }
        w.write(_head("200 OK", headers))
        w.write(_bomb())
        await w.drain()

    async def _redirect(self, w: asyncio.StreamWriter) -> None:
        w.write(_head("302 Found", {"Location": "http://example.invalid/", "Content-Length": "0"}))
        await w.drain()

    async def start(self) -> None:
        _bomb()  # made once, before anyone waits for it
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[Misbehaving]:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="misbehaving", daemon=True)
        thread.start()
        ready.wait(30)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
