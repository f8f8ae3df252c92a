"""Bounds what a provider's model list may put into status, and says what was left out.

A provider controls its model ids: they may be empty, huge, not text, or millions. Status has
limits (253 characters a name, 1,024 names, and a size in bytes that names of emoji reach long
before), and a status the API server refuses is a status never written. So ids are checked
here, the rest dropped, and the count of what was dropped or cut is kept for a condition
message. Pure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from signalbox_providers.model_facts import ModelFacts

MAX_NAME = 253  # signalbox_api.primitives.ModelName
MAX_MODELS = 1024  # LLMProviderStatus.models
# status.models in bytes as the API server receives them (JSON, non-ASCII escaped: an emoji
# is 12 bytes), well within its request and object limits whatever the names are made of.
MODELS_BYTES = 256 * 1024
ROW_BYTES = 160  # a row's fields besides its name, at most


@dataclass(frozen=True)
class Discovered:
    """The usable model ids of one listing, and how many the listing had in all."""

    names: tuple[str, ...] = ()
    listed: int = 0  # entries in the provider's list
    dropped: int = 0  # entries that are no usable name (empty, too long, not text, repeated)
    seen: frozenset[str] = field(default_factory=frozenset)  # wanted names found past the cap
    # What the provider says of its models (capabilities, context window), by name.
    facts: Mapping[str, ModelFacts] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.seen or name in self.names


def usable(name: object) -> bool:
    """A model id fit for status: text of 1 to 253 printable characters."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isprintable()


def bound(
    ids: Iterable[object], wanted: Collection[str] = (), limit: int = MAX_MODELS
) -> Discovered:
    """At most ``limit`` distinct usable names, in the provider's order; and which of the
    ``wanted`` (declared) names the list has, wherever they are in it."""
    names: dict[str, None] = {}
    seen: set[str] = set()
    listed = dropped = 0
    for item in ids:
        listed += 1
        if not usable(item):
            dropped += 1
            continue
        assert isinstance(item, str)
        if item in names:
            dropped += 1
        elif len(names) < limit:
            names[item] = None
        elif item in wanted:
            seen.add(item)
    return Discovered(tuple(names), listed, dropped, frozenset(seen))


def remember(found: Discovered, before: Mapping[str, ModelFacts]) -> Discovered:
    """``found`` with what earlier probes learnt of its models kept where this one said
    nothing new (models are described once); models no longer listed are forgotten."""
    kept = {n: f for n, f in before.items() if found.has(n) and n not in found.facts}
    return dataclasses.replace(found, facts={**kept, **found.facts})


def merge(
    declared: Sequence[str], found: Discovered | None, limit: int = MAX_MODELS
) -> tuple[list[str], str]:
    """Declared names first, then discovered ones, without repeats, at most ``limit``; and what
    a reader of status.models should know (ids dropped, or the list cut short), or ''."""
    discovered = found.names if found else ()
    everything = list(dict.fromkeys([*declared, *discovered]))
    shown = within_bytes(everything[:limit], MODELS_BYTES)
    if found is None:
        return shown, ""
    parts = []
    if found.dropped:
        parts.append(
            f"{found.dropped} of {found.listed} listed model ids were dropped "
            f"(empty, repeated, not text, or longer than {MAX_NAME} characters)"
        )
    if len(everything) > len(shown) or found.listed - found.dropped > len(found.names):
        parts.append(
            f"the provider lists more models than status holds; status.models shows {len(shown)}"
        )
    return shown, "; ".join(parts)


def within_bytes(names: Sequence[str], budget: int) -> list[str]:
    """The first ``names`` whose rows fit ``budget`` bytes of JSON as it is sent."""
    used, out = 0, []
    for name in names:
        used += len(json.dumps(name)) + ROW_BYTES
        if used > budget:
            break
        out.append(name)
    return out


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
