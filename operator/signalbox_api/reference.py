"""Renders a Markdown field reference for both CRDs from their schema descriptions.

``python -m signalbox_api.reference > crds/reference.md`` (``hack/update-crds.sh``); a test fails
when the committed reference differs from a fresh rendering.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from signalbox_api import crds

Schema = dict[str, Any]


def _type(schema: Schema) -> str:
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(f"`{v}`" for v in schema["enum"])
    return kind


def _rules(schema: Schema) -> list[str]:
    notes = []
    for key, label in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in schema:
            value = schema[key]
            notes.append(f"{label} `{value}`")
    return notes


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(path: str, schema: Schema, out: list[str]) -> None:
    props: dict[str, Schema] = schema.get("properties", {})
    if not props:
        return
    required = set(schema.get("required", []))
    out += [
        f"### `{path}`",
        "",
        _cell(schema.get("description", "")),
        "",
        "| Field | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    nested: list[tuple[str, Schema]] = []
    for name, sub in props.items():
        default = (
            f"`{json.dumps(sub['default'])}`"
            if "default" in sub and not isinstance(sub["default"], dict)
            else ""
        )
        desc = sub.get("description", "")
        notes = _rules(sub) + (["required"] if name in required else [])
        rules = sub.get("x-kubernetes-validations", [])
        notes += [f"rule: {r['message']}" for r in rules]
        detail = f"{desc} ({'; '.join(notes)})" if notes else desc
        out.append(f"| `{name}` | {_cell(_type(sub))} | {default} | {_cell(detail)} |")
        target = sub.get("items", sub) if sub.get("type") == "array" else sub
        if target.get("properties"):
            nested.append((f"{path}.{name}" + ("[]" if sub.get("type") == "array" else ""), target))
    out.append("")
    for sub_path, sub in nested:
        _section(sub_path, sub, out)


def render() -> str:
    out = [
        "# Field reference",
        "",
        "Generated from the CRD schemas by `hack/update-crds.sh`; do not edit by hand.",
        "",
    ]
    for doc in crds.all_crds().values():
        version = doc["spec"]["versions"][0]
        kind = doc["spec"]["names"]["kind"]
        root = version["schema"]["openAPIV3Schema"]
        out += [
            f"## {kind} (`{doc['spec']['group']}/{version['name']}`)",
            "",
            _cell(root.get("description", "")),
            "",
        ]
        for part in ("spec", "status"):
            _section(part, root["properties"][part], out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
