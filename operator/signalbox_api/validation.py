"""Helpers to attach CEL validation rules (``x-kubernetes-validations``) to models and fields.

The API server evaluates these rules; the messages are what a user sees from ``kubectl apply``,
so each one names the field it is about. Manifests mode has no API server, so every rule is
declared together with its Python twin (``check``): a predicate over the same wire value
(``self``, camelCase, defaults applied) that :mod:`signalbox_api.admission` evaluates. The CEL
text stays the key, so a rule and its twin cannot be separated, and a test fails when a rule in
the CRDs has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signalbox_api.primitives import parse_duration

RULES_KEY = "x-kubernetes-validations"

Check = Callable[[Any], bool]
"""A rule's twin: True when ``self`` (the wire value the rule sits on) passes it."""

_TWINS: dict[str, Check] = {}


def cel(
    rule: str, message: str, *, field_path: str | None = None, check: Check | None = None
) -> dict[str, Any]:
    """One CEL rule with the message the API server returns when it fails, and its twin.

    Transition rules (those reading ``oldSelf``) need no twin: manifests have no old object.
    """
    if check is not None:
        _TWINS[rule] = check
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def twin(rule: str) -> Check | None:
    """The Python twin declared with ``rule``; None for transition rules and undeclared ones."""
    return _TWINS.get(rule)


def is_transition(rule: str) -> bool:
    """Whether the rule compares against the stored object (and so never runs on a create)."""
    return "oldSelf" in rule


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    """The ``json_schema_extra`` that carries the given rules into the CRD schema."""
    return {RULES_KEY: list(items)}


def duration_between(low: str, high: str, name: str) -> dict[str, Any]:
    """A rule bounding a duration field, e.g. ``interval`` between ``1s`` and ``1h``."""
    lo, hi = parse_duration(low), parse_duration(high)
    return rules(
        cel(
            f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}')",
            f"{name} must be between {low} and {high}",
            check=lambda self: lo <= parse_duration(self) <= hi,
        )
    )


def has(obj: Any, *keys: str) -> bool:
    """CEL's ``has(self.a.b)``: every key is present along the way (a null counts as absent)."""
    for key in keys:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return False
        obj = obj[key]
    return True
