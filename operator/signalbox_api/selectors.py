"""Label selector matching, as Kubernetes defines it for matchLabels and matchExpressions."""

from __future__ import annotations

from collections.abc import Mapping

from signalbox_api.policy import LabelSelector, SelectorOperator


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every requirement of ``selector`` (empty selects all)."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = set(req.values or [])
        ok = {
            SelectorOperator.IN: present and labels.get(req.key) in values,
            SelectorOperator.NOT_IN: not present or labels.get(req.key) not in values,
            SelectorOperator.EXISTS: present,
            SelectorOperator.DOES_NOT_EXIST: not present,
        }[req.operator]
        if not ok:
            return False
    return True
