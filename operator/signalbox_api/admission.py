"""What the API server would admit, decided without one: the CRD schema and its CEL rules.

Manifests mode reads LLMProvider and RoutingPolicy YAML from a folder, so nothing stands where
the API server rejects a bad object. :func:`validate` walks the very schema the CRDs are
rendered from (``crds.all_crds``): it applies defaults, checks types, enums, patterns, ranges,
lengths, required fields and list keys, then evaluates each CEL rule's Python twin (declared
with the rule, see :mod:`signalbox_api.validation`). Each violation names its field the way the
API server does (``spec.models[0].cost.inputPerMTok``) with a message in the API server's words.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalbox_api import crds, validation

Schema = dict[str, Any]


VALUE = "\x00"  # where a message shows the refused value


@dataclass(frozen=True)
class Violation:
    """One reason the object is refused; ``field`` is empty for the object as a whole. The
    message shows the refused ``value`` as the API server does; ``without_value`` is for
    places a value must not reach (it may be a key: the router's unauthenticated /readyz)."""

    field: str
    message: str  # ``VALUE`` marks where the value goes
    value: str = ""

    def __str__(self) -> str:
        return f"{self.field or '<root>'}: {self.message.replace(VALUE, self.value)}"

    def without_value(self) -> str:
        return f"{self.field or '<root>'}: {self.message.replace(VALUE, '(value not shown)')}"


@functools.cache
def schemas() -> dict[str, Schema]:
    """Kind → the openAPIV3Schema the CRD declares; every CEL rule in it has a twin."""
    out = {}
    for doc in crds.all_crds().values():
        root = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        missing = [r for r in _rules(root) if not validation.is_transition(r)]
        missing = [r for r in missing if validation.twin(r) is None]
        if missing:
            raise LookupError(f"CEL rules without a Python twin: {missing}")
        out[doc["spec"]["names"]["kind"]] = root
    return out


def _rules(node: Schema) -> list[str]:
    found = [r["rule"] for r in node.get(validation.RULES_KEY, [])]
    for sub in (node.get("properties") or {}).values():
        found += _rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _rules(node[key])
    return found


def validate(doc: Mapping[str, Any]) -> list[Violation]:
    """Every reason the API server would refuse to create ``doc``; empty when it is admitted."""
    schema = schemas().get(str(doc.get("kind")))
    if schema is None:
        return [Violation("kind", f'Unsupported value: "{VALUE}"', str(doc.get("kind")))]
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        return [Violation("metadata.name", "Required value: name is required")]
    found: list[Violation] = []
    obj = copy.deepcopy(dict(doc))
    obj.pop("status", None)  # with a status subresource, a create never sets status
    _walk(schema, obj, "", found)
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_ok(value: Any, type_: str | None) -> bool:
    if type_ is None:
        return True
    if isinstance(value, bool) and type_ != "boolean":
        return False
    return isinstance(value, _TYPES[type_])


def _walk(schema: Schema, value: Any, path: str, found: list[Violation]) -> None:
    before = len(found)
    type_ = schema.get("type")
    if not _type_ok(value, type_):
        shown = type(value).__name__
        found.append(Violation(path, f'Invalid value: "{shown}": must be of type {type_}'))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        message = f'Unsupported value: "{VALUE}": supported values: {allowed}'
        found.append(Violation(path, message, str(value)))
    elif type_ == "string":
        _string(schema, value, path, found)
    elif type_ in ("integer", "number"):
        _number(schema, value, path, found)
    elif type_ == "object":
        _object(schema, value, path, found)
    elif type_ == "array":
        _array(schema, value, path, found)
    if len(found) == before:
        _run_rules(schema, value, path, found)


def _string(schema: Schema, value: str, path: str, found: list[Violation]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        found.append(Violation(path, f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        limit = schema["minLength"]
        message = f"Invalid value: {VALUE}: should be at least {limit} long"
        found.append(Violation(path, message, repr(value)))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        message = f"Invalid value: {VALUE}: {path} in body should match '{schema['pattern']}'"
        found.append(Violation(path, message, json.dumps(value)))


def _number(schema: Schema, value: float, path: str, found: list[Violation]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        limit = schema["minimum"]
        message = f"Invalid value: {VALUE}: {path} in body should be greater than or equal to"
        found.append(Violation(path, f"{message} {limit}", str(value)))
    if "maximum" in schema and value > schema["maximum"]:
        limit = schema["maximum"]
        message = f"Invalid value: {VALUE}: {path} in body should be less than or equal to"
        found.append(Violation(path, f"{message} {limit}", str(value)))


def _object(schema: Schema, value: dict[str, Any], path: str, found: list[Violation]) -> None:
    props: dict[str, Schema] = schema.get("properties") or {}
    for key in [k for k, v in value.items() if v is None]:
        del value[key]  # a null is an absent field, as the API server prunes it
    for key, sub in props.items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
    for key in schema.get("required") or []:
        if key not in value:
            found.append(Violation(_join(path, key), "Required value"))
    for key, sub in props.items():
        if key in value:
            _walk(sub, value[key], _join(path, key), found)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            _walk(extra, item, f"{path}[{key}]", found)


def _array(schema: Schema, value: list[Any], path: str, found: list[Violation]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        limit = schema["maxItems"]
        found.append(Violation(path, f"Too many: {len(value)}: must have at most {limit} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        limit = schema["minItems"]
        message = f"{path} in body should have at least {limit} items"
        found.append(Violation(path, f"Invalid value: {len(value)}: {message}"))
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _walk(items, item, f"{path}[{index}]", found)
    _unique(schema, value, path, found)


def _unique(schema: Schema, value: list[Any], path: str, found: list[Violation]) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    for index, item in enumerate(value):
        if list_type == "map" and isinstance(item, dict):
            identity = json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))
        elif list_type == "set":
            identity = json.dumps(item, sort_keys=True)
        else:
            return
        if identity in seen:
            found.append(Violation(f"{path}[{index}]", f"Duplicate value: {identity}"))
        seen.add(identity)


def _run_rules(schema: Schema, value: Any, path: str, found: list[Violation]) -> None:
    for rule in schema.get(validation.RULES_KEY, []):
        check = validation.twin(rule["rule"])
        if check is None:  # a transition rule: there is no stored object to compare with
            continue
        try:
            ok = check(value)
        except (KeyError, TypeError, ValueError):
            continue  # malformed below this node, which a schema check has reported already
        if not ok:
            where = path + rule.get("fieldPath", "") if path else rule.get("fieldPath", "")[1:]
            shown = schema.get("type", "object")
            found.append(Violation(where, f'Invalid value: "{shown}": {rule["message"]}'))
