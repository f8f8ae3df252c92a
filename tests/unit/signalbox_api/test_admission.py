"""signalbox_api.admission refuses what the API server refuses, naming the same field.

The cases are the table the integration test sends to a real API server
(tests/support/invalid_manifests.py).
"""

from __future__ import annotations

import copy

import pytest
import yaml

from signalbox_api import admission, crds, validation
from tests.support.cluster import REPO
from tests.support.invalid_manifests import INVALID, Case, policy, provider


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_invalid_manifest_is_refused_naming_the_field(case: Case) -> None:
    found = admission.validate(case.manifest)
    assert case.field in [v.field for v in found], found
    text = "\n".join(str(v) for v in found)
    for words in case.expected:
        assert words in text


def test_valid_bases_and_samples_are_admitted() -> None:
    assert admission.validate(provider()) == []
    assert admission.validate(policy()) == []
    for path in sorted((REPO / "crds" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("LLMProvider", "RoutingPolicy"):
                assert admission.validate(doc) == [], path


def test_every_cel_rule_in_the_crds_has_a_python_twin() -> None:
    for doc in crds.all_crds().values():
        root = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for rule in admission._rules(root):
            assert validation.is_transition(rule) or validation.twin(rule) is not None, rule
    assert set(admission.schemas()) == {"LLMProvider", "RoutingPolicy"}


def test_defaults_are_applied_before_rules_and_the_input_is_left_alone() -> None:
    # timeout (default 5s) must not exceed interval: a 2s interval alone is refused.
    manifest = provider(healthCheck={"interval": "2s"})
    before = copy.deepcopy(manifest)
    found = admission.validate(manifest)
    assert [v.field for v in found] == ["spec.healthCheck"]
    assert "timeout must not exceed" in found[0].message
    assert manifest == before


def test_a_wrong_type_or_a_missing_name_is_a_violation_not_a_crash() -> None:
    assert admission.validate(provider(priority="high"))[0].field == "spec.priority"
    assert admission.validate(provider(models="gpt-4o"))[0].field == "spec.models"
    nameless = provider()
    del nameless["metadata"]["name"]
    assert [v.field for v in admission.validate(nameless)] == ["metadata.name"]
    assert admission.validate({"kind": "Secret", "metadata": {"name": "s"}})[0].field == "kind"


def test_status_is_ignored_as_the_api_server_ignores_it_on_create() -> None:
    manifest = provider()
    manifest["status"] = {"conditions": [{"type": "Ready"}], "circuit": {"state": "Melted"}}
    assert admission.validate(manifest) == []
