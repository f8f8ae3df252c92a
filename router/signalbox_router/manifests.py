"""Manifests mode: the same LLMProvider / RoutingPolicy YAML, read from a folder, no cluster.

API keys come from Secrets in the same folder, from files laid out like a mounted Secret
(``SECRETS_DIR/<secret name>/<key>``), or from environment variables named
``SIGNALBOX_SECRET_<SECRET>_<KEY>`` (upper case, other characters as ``_``). In-cluster
``service`` endpoints resolve to the Service's DNS name. With no operator, the local breaker
is the only health signal. The folder is re-read when a file in it changes.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml

from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider, LLMProviderSpec
from signalbox_router.snapshot import PolicyEntry, ProviderEntry, Snapshot

log = logging.getLogger(__name__)


class ManifestError(ValueError):
    """A manifest cannot be used; the message names the file and object."""


def _documents(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict):
                    docs.append((path, doc))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    return docs


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return {k: v.strip() for k, v in data.items()}


def _env_name(secret: str, key: str) -> str:
    return "SIGNALBOX_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{secret}_{key}".upper())


def _api_key(
    spec: LLMProviderSpec,
    secrets: Mapping[str, Mapping[str, str]],
    secrets_dir: Path | None,
    environ: Mapping[str, str],
) -> str | None:
    if spec.auth is None:
        return None
    ref = spec.auth.secret_ref
    if ref.key in secrets.get(ref.name, {}):
        return secrets[ref.name][ref.key]
    if secrets_dir is not None and (secrets_dir / ref.name / ref.key).is_file():
        return (secrets_dir / ref.name / ref.key).read_text().strip()
    return environ.get(_env_name(ref.name, ref.key))


def _endpoints(spec: LLMProviderSpec, namespace: str) -> tuple[str, ...]:
    if spec.endpoint.url:
        return (spec.endpoint.url,)
    svc = spec.endpoint.service
    if svc is None:
        return ()
    return (f"{svc.scheme}://{svc.name}.{svc.namespace or namespace}.svc:{svc.port}{svc.path}",)


def load(
    folder: Path, secrets_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Snapshot:
    """A snapshot of every provider and policy in ``folder``; ManifestError when one is bad."""
    env = os.environ if environ is None else environ
    docs = _documents(folder)
    secrets = {d["metadata"]["name"]: _secret_data(d) for _, d in docs if d.get("kind") == "Secret"}
    providers: dict[str, ProviderEntry] = {}
    policies: list[PolicyEntry] = []
    for path, doc in docs:
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        name = str(meta.get("name", ""))
        try:
            if kind == "LLMProvider":
                spec = LLMProvider.model_validate(doc).spec
                key = _api_key(spec, secrets, secrets_dir, env)
                if spec.auth is not None and key is None:
                    log.warning("%s: no API key found for LLMProvider %s", path, name)
                providers[name] = ProviderEntry(
                    name=name,
                    spec=spec,
                    api_key=key,
                    labels=meta.get("labels") or {},
                    endpoints=_endpoints(spec, meta.get("namespace") or "default"),
                )
            elif kind == "RoutingPolicy":
                policies.append(
                    PolicyEntry(
                        name,
                        RoutingPolicy.model_validate(doc).spec,
                        created=f"{path.name}:{len(policies):04d}",
                    )
                )
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ManifestError(f"{path}: {kind} {name}: {where}: {first['msg']}") from exc
    return Snapshot(providers=providers, policies=tuple(policies))


def fingerprint(folder: Path) -> tuple[tuple[str, float], ...]:
    """Names and modification times, to notice edits."""
    return tuple(sorted((p.name, p.stat().st_mtime) for p in folder.iterdir() if p.is_file()))
