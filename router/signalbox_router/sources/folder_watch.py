"""Manifests mode's watcher: the folder is looked at every ``poll`` seconds and re-read when a
file in it, or a key file under ``--secrets-dir``, changed.

What it found is put in ``RouterState``: the snapshot, the problems (a bad file or object keeps
its last good version, see :mod:`signalbox_router.sources.manifest_objects`) and, through its
:class:`~signalbox_router.supervision.Health`, whether it can do its job at all: a folder that
disappears marks it failing (``/readyz`` answers 503 at once) while the last good manifests
serve on, and reading resumes when the folder is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from signalbox_router import supervision
from signalbox_router.sources import manifests
from signalbox_router.state import RouterState

log = logging.getLogger("signalbox_router")


def first_reading(folder: Path, secrets_dir: Path | None) -> FolderWatch:
    """The watch, after its first reading; ManifestError when the folder cannot be read."""
    seen = look(folder, secrets_dir)
    loaded = manifests.read(folder, secrets_dir)
    report(folder, loaded)
    return FolderWatch(folder, secrets_dir, loaded, seen)


def look(folder: Path, secrets_dir: Path | None) -> object | None:
    """What a change shows in: the manifests' files and the key files of ``secrets_dir`` (a
    rotated key is a change too); None when the manifests folder is gone."""
    files = manifests.fingerprint(folder)
    return None if files is None else (files, manifests.secrets_fingerprint(secrets_dir))


def report(folder: Path, loaded: manifests.Loaded) -> None:
    for problem in loaded.problems:
        log.error("%s", problem)
    if loaded.problems:
        log.error(
            "keeping the previous manifests for %d file(s) or object(s) in %s that cannot be used",
            len(loaded.problems),
            folder,
        )


@dataclass
class FolderWatch:
    """Re-reads the folder when a file in it changes; the snapshot (and its caches) is replaced
    only then. The last reading outlives a restart of the task, so a bad object keeps its last
    good version across crashes too."""

    folder: Path
    secrets_dir: Path | None
    loaded: manifests.Loaded
    seen: object = None  # the fingerprint of the last reading; None re-reads at the next look
    poll: float = 2.0  # seconds between looks

    async def run(self, state: RouterState, health: supervision.Health) -> None:
        while True:
            now = look(self.folder, self.secrets_dir)
            if now is None:
                if health.name not in state.failing:
                    log.error(
                        "manifests folder %s is missing; serving the last good manifests",
                        self.folder,
                    )
                health.fail(f"manifests folder {self.folder} is missing")
                self.seen = None
            else:
                if now != self.seen:
                    await self._reload(state, now)
                state.synced_at = time.monotonic()
                health.ok()
            await asyncio.sleep(self.poll)

    async def _reload(self, state: RouterState, fingerprint: object) -> None:
        try:  # parsed off the event loop: a large folder must not stall requests
            loaded = await asyncio.to_thread(
                manifests.read, self.folder, self.secrets_dir, previous=self.loaded
            )
        except manifests.ManifestError:
            return  # the folder went away mid-read: the next look reports it
        self.loaded = loaded
        state.snapshot = loaded.snapshot
        state.problems = tuple(str(p) for p in loaded.problems)
        self.seen = fingerprint
        report(self.folder, loaded)
        log.info("reloaded manifests from %s", self.folder)
