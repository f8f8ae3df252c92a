"""Manifests mode: the same LLMProvider / RoutingPolicy YAML, read from a folder, no cluster.

API keys come from Secrets in the same folder, from files laid out like a mounted Secret
(``SECRETS_DIR/<secret name>/<key>``), or from environment variables named
``SIGNALBOX_SECRET_<SECRET>_<KEY>`` (upper case, other characters as ``_``). Each is checked as
the operator checks a Secret: a key file must be a regular file of at most 16 KiB, and a key
must be sendable in a header; a bad one is a problem (the previous good key stays), and a
provider with no good key takes no requests rather than requests without auth. In-cluster
``service`` endpoints resolve to the Service's DNS name. With no operator, the local breaker
is the only health signal.

Every object is judged on its own, by what the API server would admit
(:func:`signalbox_api.admission.validate`): a file that cannot be read or parsed, or an object
that is refused, keeps the last good version of what it held, and the load reports a
:class:`Problem` naming the file or object and why (never a secret value). Only a missing
folder fails the load as a whole.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from signalbox_api import admission, api_keys
from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider, LLMProviderSpec
from signalbox_router.routing.snapshot import PolicyEntry, ProviderEntry, Snapshot
from signalbox_router.sources.manifest_objects import Item, Problem, merge, parse_file

log = logging.getLogger(__name__)

__all__ = ["Item", "Loaded", "ManifestError", "Problem", "fingerprint", "load", "read"]


class ManifestError(ValueError):
    """The folder cannot be read at all; the message names it."""


@dataclass(frozen=True)
class Loaded:
    """One reading of the folder: the snapshot, the objects it was built from, what was wrong."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    items: Mapping[tuple[str, str], Item] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no such folder")
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError as exc:
        raise ManifestError(f"{folder}: cannot be read ({exc.strerror or exc})") from None


def _env_name(secret: str, key: str) -> str:
    return "SIGNALBOX_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{secret}_{key}".upper())


class _BadKey(Exception):
    """A key source that cannot be used; the message names the problem, never the value."""


@dataclass(frozen=True)
class _Keys:
    """Where API keys are found, and the previous keys to keep when a source goes bad."""

    secrets: Mapping[str, Mapping[str, str]]
    secrets_dir: Path | None
    environ: Mapping[str, str]
    previous: Snapshot

    def key(
        self, name: str, spec: LLMProviderSpec, problems: list[Problem]
    ) -> tuple[str | None, bool]:
        """The provider's key, and whether the provider may take requests: from its Secret,
        its key file or the environment, checked as the operator checks a Secret's
        (``api_keys``). A bad one is a problem, and the previous good key stays; with none,
        the provider takes no requests, rather than requests without auth."""
        if spec.auth is None:
            return None, True
        ref = spec.auth.secret_ref
        try:
            value, where = self._find(ref.name, ref.key)
            if value is None:
                raise _BadKey(f"Secret {ref.name} key {ref.key!r}: not found")
            why = api_keys.problem(value)
            if why is not None:
                raise _BadKey(f"{where}: {why}")
            return value, True
        except _BadKey as exc:
            old = self.previous.providers.get(name)
            kept = old.api_key if old is not None else None
            problems.append(Problem(str(exc), "keeping the previous key" if kept else _NO_USE))
            return kept, kept is not None

    def _find(self, secret: str, key: str) -> tuple[str | None, str]:
        if key in self.secrets.get(secret, {}):
            return self.secrets[secret][key], f"Secret {secret} key {key!r}"
        if self.secrets_dir is not None:
            path = self.secrets_dir / secret / key
            if os.path.lexists(path):
                return _key_file(path), str(path)
        env = _env_name(secret, key)
        return self.environ.get(env), f"${env} (Secret {secret} key {key!r})"


_NO_USE = "the provider takes no requests until it is fixed"


def _key_file(path: Path) -> str:
    """A key file's text: a regular file (links followed), at most ``api_keys.MAX_BYTES``,
    UTF-8. _BadKey otherwise."""
    try:
        if not path.is_file():
            what = "a dangling link" if not path.exists() else "not a regular file"
            raise _BadKey(f"{path}: {what}")
        with path.open("rb") as f:
            raw = f.read(api_keys.MAX_BYTES + 1)
    except OSError as exc:
        raise _BadKey(f"{path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > api_keys.MAX_BYTES:
        raise _BadKey(f"{path}: the key is over {api_keys.MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _BadKey(f"{path}: not UTF-8 text") from None


def _endpoints(spec: LLMProviderSpec, namespace: str) -> tuple[str, ...]:
    if spec.endpoint.url:
        return (spec.endpoint.url,)
    svc = spec.endpoint.service
    if svc is None:
        return ()
    return (f"{svc.scheme}://{svc.name}.{svc.namespace or namespace}.svc:{svc.port}{svc.path}",)


def _build(items: Mapping[tuple[str, str], Item], keys: _Keys, problems: list[Problem]) -> Snapshot:
    providers: dict[str, ProviderEntry] = {}
    policies: list[PolicyEntry] = []
    for item in items.values():
        if isinstance(item.value, LLMProvider):
            spec = item.value.spec
            key, usable = keys.key(item.name, spec, problems)
            bad = not usable
            providers[item.name] = ProviderEntry(
                name=item.name,
                spec=spec,
                api_key=key,
                labels=item.labels or {},
                endpoints=_endpoints(spec, item.namespace),
                ready=False if bad else None,
                reason="InvalidSecret" if bad else "",
            )
        elif isinstance(item.value, RoutingPolicy):
            policies.append(PolicyEntry(item.name, item.value.spec, created=item.created))
    return Snapshot(providers=providers, policies=tuple(policies))


def read(
    folder: Path,
    secrets_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    previous: Loaded | None = None,
) -> Loaded:
    """Every provider and policy in ``folder``; a bad file or object keeps its version from
    ``previous``. ManifestError only when the folder itself cannot be read."""
    before = previous or Loaded()
    items: dict[tuple[str, str], Item] = {}
    problems: list[Problem] = []
    for path in _files(folder):
        merge(items, parse_file(path, before.items, problems, admission.validate), problems)
    secrets = {n: i.value for (k, n), i in items.items() if isinstance(i.value, dict)}
    keys = _Keys(secrets, secrets_dir, os.environ if environ is None else environ, before.snapshot)
    snapshot = _build(items, keys, problems)
    return Loaded(snapshot, items, tuple(problems))


def load(
    folder: Path, secrets_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Snapshot:
    """The snapshot of one first reading (bad objects left out); ManifestError when the folder
    cannot be read."""
    return read(folder, secrets_dir, environ).snapshot


def secrets_fingerprint(folder: Path | None) -> tuple[tuple[str, object], ...] | None:
    """The key files of a ``--secrets-dir`` (``DIR/<secret>/<key>``), each secret's folder as
    ``fingerprint`` sees it (links followed, so a mounted Secret's ``..data`` swap shows), to
    notice a rotated key. None without such a folder."""
    if folder is None:
        return None
    try:
        secrets = [s for s in folder.iterdir() if not s.name.startswith("..") and s.is_dir()]
    except OSError:
        return None
    return tuple(sorted((s.name, fingerprint(s)) for s in secrets))


def fingerprint(folder: Path) -> tuple[tuple[str, float, int], ...] | None:
    """Names, modification times and sizes, to notice edits; None when the folder is gone."""
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return None
    for path in entries:
        try:
            st = path.stat()
        except OSError:  # a dangling link, or removed since the listing
            out.append((path.name, -1.0, -1))
            continue
        if path.is_file():
            out.append((path.name, st.st_mtime, st.st_size))
    return tuple(sorted(out))
