"""Model labels for metrics and the usage summary, keyed only by declared names.

A declared model, alias or policy model name is its own label, a name a policy's glob matches
counts under the glob as written, and any other name under ``other``; so no client can grow the
series (or the usage summary) without bound.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from signalbox_router.routing.snapshot import Snapshot

__all__ = ["OTHER", "UNFOLLOWED_NAMES", "Labels"]

OTHER = "other"
# Labels remembered for names asked for; emptied when full, so it stays small.
_LABELS_KEPT = 4096
# With no snapshot to follow (a meter used on its own), names as given, up to this many.
UNFOLLOWED_NAMES = 100


class Labels:
    """The model label for a requested name under one snapshot's declarations."""

    def __init__(self, snapshot: Snapshot) -> None:
        patterns = [pattern for policy in snapshot.policies for pattern in policy.spec.models]
        names = {p for p in patterns if not _is_glob(p)}
        for entry in snapshot.providers.values():
            for model in entry.spec.models:
                names.add(model.name)
                names.update(model.aliases)
        self.globs = tuple(dict.fromkeys(p for p in patterns if _is_glob(p)))
        self.known: dict[str, str] = {n: n for n in names}
        self.declared = len(self.known)

    def __call__(self, model: str) -> str:
        label = self.known.get(model)
        if label is None:
            label = next((g for g in self.globs if fnmatchcase(model, g)), OTHER)
            if len(self.known) >= self.declared + _LABELS_KEPT:
                self.known = {k: v for k, v in self.known.items() if k == v}
            self.known[model] = label
        return label


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")
