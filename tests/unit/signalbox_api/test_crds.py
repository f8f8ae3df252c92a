"""The CRD YAML in crds/ is exactly what the models render, and the models parse the samples."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from signalbox_api import crds, schema
from signalbox_api.policy import RoutingPolicy, Strategy
from signalbox_api.provider import Capability, LLMProvider, ProviderType
from tests.support.cluster import REPO

CRD_DIR = REPO / "crds"


@pytest.mark.parametrize("name", sorted(crds.all_crds()))
def test_committed_crd_matches_models(name: str) -> None:
    committed = (CRD_DIR / name).read_text()
    assert committed == crds.render(crds.all_crds()[name]), (
        f"crds/{name} drifted from the models; run hack/update-crds.sh"
    )


def _walk(node: dict[str, object], path: str = "") -> list[str]:
    missing = []
    props = node.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if "description" not in sub:
                missing.append(f"{path}.{key}")
            missing += _walk(sub, f"{path}.{key}")
    items = node.get("items")
    if isinstance(items, dict):
        missing += _walk(items, f"{path}[]")
    return missing


@pytest.mark.parametrize("name", sorted(crds.all_crds()))
def test_every_field_is_described(name: str) -> None:
    root = crds.all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(root) == []


def test_schema_mirrors_enums_and_ranges() -> None:
    spec = crds.all_crds()["signalbox.dev_llmproviders.yaml"]["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]["properties"]["spec"]["properties"]
    assert spec["type"]["enum"] == [t.value for t in ProviderType]
    caps = spec["models"]["items"]["properties"]["capabilities"]["items"]["enum"]
    assert caps == [c.value for c in Capability]
    assert spec["priority"]["minimum"] == 0
    assert spec["priority"]["maximum"] == 1000
    assert spec["models"]["maxItems"] == 64
    assert spec["models"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["healthCheck"]["default"]["interval"] == "30s"


def test_description_is_required() -> None:
    import pydantic

    class Undocumented(pydantic.BaseModel):
        """A model with an undocumented field."""

        x: int

    with pytest.raises(schema.SchemaError, match=r"Undocumented\.x has no description"):
        schema.model_schema(Undocumented)


def _sample_docs() -> list[tuple[str, dict[str, object]]]:
    docs = []
    for path in sorted((CRD_DIR / "samples").glob("**/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("signalbox.dev/"):
                docs.append((f"{Path(path).name}:{doc['metadata']['name']}", doc))
    return docs


@pytest.mark.parametrize(("label", "doc"), _sample_docs(), ids=[d[0] for d in _sample_docs()])
def test_models_parse_samples(label: str, doc: dict[str, object]) -> None:
    kinds: dict[str, type[pydantic.BaseModel]] = {
        "LLMProvider": LLMProvider,
        "RoutingPolicy": RoutingPolicy,
    }
    model = kinds[str(doc["kind"])]
    parsed = model.model_validate(doc)
    assert parsed.model_dump()["spec"], label


def test_models_apply_the_same_defaults_as_the_schema() -> None:
    p = LLMProvider.model_validate({"spec": {"type": "Ollama", "endpoint": {"url": "http://x"}}})
    assert p.spec.health_check.interval == "30s"
    assert p.spec.circuit_breaker.max_open_duration == "10m"
    rp = RoutingPolicy.model_validate({"spec": {"models": ["a"], "providers": [{"name": "x"}]}})
    assert rp.spec.strategy is Strategy.PRIORITY
    assert [r.value for r in rp.spec.failover.retry_on] == [
        "ConnectFailure",
        "Timeout",
        "ServerError",
        "RateLimited",
    ]
    assert p.to_wire()["spec"]["healthCheck"]["mode"] == "ListModels"


@pytest.mark.parametrize("name", sorted(crds.all_crds()))
def test_chart_crds_match_models(name: str) -> None:
    chart_copy = (REPO / "charts" / "signalbox" / "files" / "crds" / name).read_text()
    doc = crds.all_crds()[name]
    assert chart_copy == crds.render(crds.for_chart(doc)), "run hack/update-crds.sh"
    parsed = yaml.safe_load(chart_copy)
    assert parsed["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    del parsed["metadata"]["annotations"]
    assert parsed == yaml.safe_load((CRD_DIR / name).read_text()), "same CRD as crds/"


def test_field_reference_is_current() -> None:
    from signalbox_api import reference

    committed = (CRD_DIR / "reference.md").read_text()
    assert committed == reference.render(), "crds/reference.md is stale; run hack/update-crds.sh"
    assert "### `spec.healthCheck`" in committed
    assert "exactly one of spec.endpoint.url or spec.endpoint.service" in committed
