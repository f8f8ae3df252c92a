"""The values of the Secret keys that providers refer to, and nothing else.

The operator's index of Secrets holds each one's version and the size of each key, never a
value (``refs.SecretShape``): a namespace's certificates, tokens and unrelated blobs cost it a
few bytes each. When a probe round needs a provider's key, ``ensure`` reads that Secret from
the API server, once per version of it, and keeps that one key; ``view`` gives ``refs.resolve``
what it reads; ``forget`` lets go of a Secret no provider refers to any more.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping

from signalbox_operator.probing.refs import MAX_KEY_BYTES, Key, SecretShape

# Reads a Secret's base64 ``data`` from the API server; None when there is no such Secret.
Reader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]


async def _nothing(_namespace: str, _name: str) -> Mapping[str, str] | None:
    return None


class SecretValues:
    def __init__(self, read: Reader = _nothing) -> None:
        self._read = read
        self._held: dict[Key, tuple[str, dict[str, str]]] = {}
        self._reading: dict[Key, asyncio.Lock] = {}

    def _has(self, secret: Key, key: str, version: str) -> bool:
        held = self._held.get(secret)
        return held is not None and held[0] == version and key in held[1]

    async def ensure(self, secret: Key, key: str, shape: SecretShape) -> None:
        """Hold ``key`` of ``secret`` at the version ``shape`` says, reading it if need be: one
        read at a time per Secret, so the providers that share one (all woken by its change)
        cause one read, not one each."""
        size = shape.sizes.get(key)
        if size is None or size > MAX_KEY_BYTES or self._has(secret, key, shape.version):
            return
        async with self._reading.setdefault(secret, asyncio.Lock()):
            if not self._has(secret, key, shape.version):  # nobody read it meanwhile
                await self._read_key(secret, key, shape)

    async def _read_key(self, secret: Key, key: str, shape: SecretShape) -> None:
        data = await self._read(*secret)
        if data is None or key not in data:
            self._held.pop(secret, None)
            return
        held = self._held.get(secret)  # as it is now, after the read
        values = dict(held[1]) if held is not None and held[0] == shape.version else {}
        try:
            values[key] = base64.b64decode(data[key]).decode("utf-8", "replace").strip()
        except (binascii.Error, ValueError):
            values.pop(key, None)
        self._held[secret] = (shape.version, values)

    def view(self, secret: Key, shape: SecretShape) -> dict[str, str | int]:
        """The Secret as ``refs.resolve`` reads it: each held value, and for every other key
        its size (a key too large to be an API key is never read)."""
        held = self._held.get(secret)
        values = held[1] if held is not None and held[0] == shape.version else {}
        return {k: values.get(k, size) for k, size in shape.sizes.items()}

    def forget(self, secret: Key) -> None:
        """Let go of ``secret``: no provider refers to it any more."""
        self._held.pop(secret, None)
        self._reading.pop(secret, None)

    def held(self) -> dict[Key, tuple[str, ...]]:
        """Which keys of which Secrets are held (names only), for tests and debugging."""
        return {s: tuple(sorted(v[1])) for s, v in self._held.items()}
