"""The CustomResourceDefinitions of both kinds, rendered from the models.

``python -m signalbox_api.crds crds/`` writes them (``hack/update-crds.sh``);
``tests/unit/signalbox_api/test_crds.py`` fails when the committed YAML differs from a fresh
rendering.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pydantic
import yaml

from signalbox_api import GROUP, VERSION
from signalbox_api.policy import RoutingPolicy
from signalbox_api.provider import LLMProvider
from signalbox_api.schema import Schema, model_schema
from signalbox_api.validation import cel

CATEGORY = "llm"


def _condition(type_: str, field: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


def _column(name: str, path: str, type_: str = "string", priority: int = 0, **kw: str) -> Schema:
    out: Schema = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        out["priority"] = priority
    out.update(kw)
    return out


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

PROVIDER_COLUMNS = [
    _column("Type", ".spec.type"),
    _column("Ready", _condition("Ready", "status")),
    _column("Circuit", ".status.circuit.state"),
    _column("Priority", ".spec.priority", "integer"),
    _column("Reason", _condition("Ready", "reason")),
    _column(
        "Probed",
        ".status.health.lastProbeTime",
        "date",
        description="Time since the operator last recorded a probe: normally under a minute "
        "plus the interval; more means no operator is watching this provider.",
    ),
    _AGE,
    _column("Endpoint", ".status.endpoint", priority=1),
    _column(
        "Latency",
        ".status.health.latency",
        priority=1,
        description="Latency of the last probe, with its unit.",
    ),
    _column(
        "Uptime-1h",
        ".status.health.lastHour.uptime",
        "number",
        priority=1,
        description="Share of the last hour the provider answered its probes.",
    ),
    _column("Models", ".status.modelSummary", priority=1),
    _column(
        "Discovered",
        ".status.capabilitySummary",
        priority=1,
        description="Context windows and capabilities the provider reports for its models.",
    ),
]

POLICY_COLUMNS = [
    _column("Strategy", ".spec.strategy"),
    _column("Active", ".status.activeProvider"),
    _column("Eligible", ".status.eligible"),
    _column("Ready", _condition("Ready", "status")),
    _AGE,
    _column("Degraded", _condition("Degraded", "status"), priority=1),
    _column("Models", ".spec.models", priority=1),
]


def _root_schema(model: type[pydantic.BaseModel], max_name: int) -> Schema:
    schema = model_schema(model)
    props = schema["properties"]
    props["status"].pop("default", None)  # status is the operator's to write, from nothing
    schema["properties"] = {
        "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
        "kind": {"type": "string", "description": model.__name__},
        "metadata": {"type": "object"},
        **props,
    }
    schema["x-kubernetes-validations"] = [
        cel(
            f"size(self.metadata.name) <= {max_name}",
            f"metadata.name must be at most {max_name} characters",
            check=lambda self: len(self["metadata"]["name"]) <= max_name,
        )
    ]
    return schema


def crd(
    model: type[pydantic.BaseModel],
    plural: str,
    short: str,
    columns: list[Schema],
    max_name: int,
) -> dict[str, Any]:
    """One CRD document for ``model``."""
    kind = model.__name__
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": _root_schema(model, max_name)},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD document, for every kind."""
    return {
        f"{GROUP}_llmproviders.yaml": crd(
            LLMProvider, "llmproviders", "llmp", PROVIDER_COLUMNS, 63
        ),
        f"{GROUP}_routingpolicies.yaml": crd(
            RoutingPolicy, "routingpolicies", "llmrp", POLICY_COLUMNS, 253
        ),
    }


def render(doc: dict[str, Any]) -> str:
    """YAML text as committed in ``crds/``."""
    header = "# Generated from operator/signalbox_api by hack/update-crds.sh. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def for_chart(doc: dict[str, Any]) -> dict[str, Any]:
    """The CRD as the Helm chart installs it: kept when the release is uninstalled."""
    out = copy.deepcopy(doc)
    out["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    return out


def main(argv: list[str]) -> int:
    """``python -m signalbox_api.crds CRD_DIR [CHART_CRD_DIR]``"""
    out_dir = Path(argv[0] if argv else "crds")
    chart_dir = Path(argv[1]) if len(argv) > 1 else None
    for name, doc in all_crds().items():
        (out_dir / name).write_text(render(doc))
        print(out_dir / name)
        if chart_dir is not None:
            (chart_dir / name).write_text(render(for_chart(doc)))
            print(chart_dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
