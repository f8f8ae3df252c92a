"""One manifest file into objects, each judged on its own: what is bad keeps its last good version.

A file that cannot be read (a dangling link, a file removed while being read, bytes that are
not UTF-8) or parsed (bad YAML) keeps everything it held before. In a readable file, an object
the API server would refuse, or a Secret whose data is not base64 of UTF-8 text, keeps its own
previous version; the others are taken as they are now. Each refusal becomes a
:class:`Problem` that names the file or object and why, in words that never hold a secret value
(PyYAML's messages quote the offending line, so only its problem and position are kept).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from signalbox_api.admission import Violation
from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider
from signalbox_router.sources import secret_data

Key = tuple[str, str]  # (kind, name)
Validate = Callable[[Mapping[str, Any]], Sequence[Violation]]
_MODELS: dict[str, type[LLMProvider] | type[RoutingPolicy]] = {
    "LLMProvider": LLMProvider,
    "RoutingPolicy": RoutingPolicy,
}


@dataclass(frozen=True)
class Problem:
    """Something in the folder that could not be used: where (file, or file and object), why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Item:
    """One usable object: a parsed LLMProvider or RoutingPolicy, or a Secret's decoded keys."""

    kind: str
    name: str
    path: Path
    value: LLMProvider | RoutingPolicy | dict[str, str] = field(repr=False)
    labels: Mapping[str, str] | None = None
    namespace: str = "default"
    created: str = ""  # file name and position: the earlier policy wins a conflict


MAX_FILE = 8 << 20  # bytes in one manifests file (the API server keeps objects under 1.5 MB)


class _TooLarge(Exception):
    """A manifests file over MAX_FILE bytes."""


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, _TooLarge):
        return f"larger than {MAX_FILE >> 20} MiB"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML: {exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.YAMLError):
        return "not valid YAML"
    if isinstance(exc, OSError):
        return f"cannot be read: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return type(exc).__name__


def _judge(kind: str, doc: dict[str, Any], validate: Validate) -> tuple[Any, str]:
    """The usable value of one object, or the reason it is refused."""
    if kind == "Secret":
        try:
            return secret_data.decode(doc), ""
        except secret_data.SecretDataError as exc:
            return None, str(exc)
    violations = validate(doc)
    if violations:
        return None, "; ".join(v.without_value() for v in violations[:3])
    try:
        return _MODELS[kind].model_validate(doc), ""
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return None, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


_AGAIN = "defined again (first in {}): the first definition is used"


def merge(items: dict[Key, Item], found: Mapping[Key, Item], problems: list[Problem]) -> None:
    """Add one file's objects to ``items``; an object already there (same kind and name, from
    an earlier file) stays, and the repeat is a problem."""
    for key, item in found.items():
        first = items.get(key)
        if first is not None and first.path != item.path:
            problems.append(Problem(f"{item.path}: {key[0]} {key[1]}", _AGAIN.format(first.path)))
            continue
        items[key] = item


def parse_file(
    path: Path, previous: Mapping[Key, Item], problems: list[Problem], validate: Validate
) -> dict[Key, Item]:
    """The objects in ``path`` (LLMProviders, RoutingPolicies, Secrets), refusals recorded in
    ``problems`` and replaced by their version in ``previous`` where there is one."""
    try:
        if path.stat().st_size > MAX_FILE:
            raise _TooLarge
        docs = list(yaml.safe_load_all(path.read_bytes().decode("utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, _TooLarge) as exc:
        problems.append(Problem(str(path), f"{_unreadable(exc)}; keeping what it held before"))
        return {k: v for k, v in previous.items() if v.path == path}
    out: dict[Key, Item] = {}
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") not in ("Secret", *_MODELS):
            continue
        kind, meta = str(doc["kind"]), doc.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{path}: document {index + 1}", f"{kind} without a name"))
            continue
        if (kind, name) in out:
            problems.append(Problem(f"{path}: {kind} {name}", _AGAIN.format(out[kind, name].path)))
            continue
        value, reason = _judge(kind, doc, validate)
        if reason:
            kept = previous.get((kind, name))
            then = "keeping its previous version" if kept else "no previous version to keep"
            problems.append(Problem(f"{path}: {kind} {name}", f"{reason}; {then}"))
            if kept is not None:
                out[(kind, name)] = kept
            continue
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else None
        namespace = str(meta.get("namespace") or "default")
        created = f"{path.name}:{index:04d}"
        out[(kind, name)] = Item(kind, name, path, value, labels, namespace, created)
    return out
