"""Helpers to attach CEL validation rules (``x-kubernetes-validations``) to models and fields.

The API server evaluates these rules; the messages are what a user sees from ``kubectl apply``,
so each one names the field it is about.
"""

from __future__ import annotations

from typing import Any

RULES_KEY = "x-kubernetes-validations"


def cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, Any]:
    """One CEL rule with the message the API server returns when it fails."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    """The ``json_schema_extra`` that carries the given rules into the CRD schema."""
    return {RULES_KEY: list(items)}


def duration_between(low: str, high: str, name: str) -> dict[str, Any]:
    """A rule bounding a duration field, e.g. ``interval`` between ``1s`` and ``1h``."""
    return rules(
        cel(
            f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}')",
            f"{name} must be between {low} and {high}",
        )
    )
