"""Renders pydantic models as Kubernetes structural OpenAPI v3 schemas.

The CRDs in ``crds/`` are produced from the models with this module, so the API server and
the Python code enforce the same types, ranges, patterns, defaults and CEL rules. Every field
must carry a description: ``kubectl explain`` is documentation too.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import datetime
from typing import Any

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

Schema = dict[str, Any]

_CONSTRAINTS = {
    "pattern": ("pattern", "pattern"),
    "min_length": ("minLength", "minItems"),
    "max_length": ("maxLength", "maxItems"),
    "ge": ("minimum", "minimum"),
    "le": ("maximum", "maximum"),
}


class SchemaError(TypeError):
    """A model uses a construct that has no structural-schema rendering."""


def model_schema(model: type[pydantic.BaseModel], description: str | None = None) -> Schema:
    """The structural schema of a model: an object with typed, described properties."""
    props: dict[str, Schema] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        wire_name = info.alias or name
        if info.description is None:
            raise SchemaError(f"{model.__name__}.{name} has no description")
        props[wire_name] = field_schema(info)
        if info.is_required():
            required.append(wire_name)
    out: Schema = {"type": "object", "description": description or _doc(model)}
    if props:
        out["properties"] = props
    if required:
        out["required"] = required
    extra = model.model_config.get("json_schema_extra")
    if isinstance(extra, dict):
        out.update(extra)
    return out


def field_schema(info: FieldInfo) -> Schema:
    """The schema of one field: its type, constraints, default, description and rules."""
    out = type_schema(info.annotation, list(info.metadata), description=info.description)
    default = _default(info)
    if default is not None:
        out["default"] = default
    if isinstance(info.json_schema_extra, dict):
        out.update(info.json_schema_extra)
    return out


def type_schema(tp: Any, metadata: list[Any], description: str | None = None) -> Schema:
    """The schema of a type annotation, with constraints from ``metadata`` applied."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(tp)
        return type_schema(base, [*extra, *metadata], description)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise SchemaError(f"unions other than Optional are not structural: {tp}")
        return type_schema(args[0], metadata, description)
    out = _base_schema(tp, origin)
    is_list = out["type"] == "array"
    for item in metadata:
        for attr, (str_key, list_key) in _CONSTRAINTS.items():
            value = getattr(item, attr, None)
            if value is not None:
                out[list_key if is_list else str_key] = value
    if description:
        out["description"] = description
    return out


def _base_schema(tp: Any, origin: Any) -> Schema:
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": type_schema(item, [])}
    if origin is dict:
        _, value = typing.get_args(tp)
        return {"type": "object", "additionalProperties": type_schema(value, [])}
    if origin is typing.Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    if isinstance(tp, type):
        if issubclass(tp, pydantic.BaseModel):
            return model_schema(tp)
        if issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        for py_type, schema in _SCALARS:
            if issubclass(tp, py_type):
                return dict(schema)
    raise SchemaError(f"no structural schema for {tp!r}")


# bool before int: bool is a subclass of int.
_SCALARS: list[tuple[type, Schema]] = [
    (bool, {"type": "boolean"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (datetime, {"type": "string", "format": "date-time"}),
    (str, {"type": "string"}),
]


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        factory: Any = info.default_factory
        if isinstance(factory, type) and issubclass(factory, pydantic.BaseModel):
            # The whole defaulted object, so CEL rules on it always see every field.
            return factory().model_dump(by_alias=True, exclude_none=True, mode="json")
        value = factory()
        return [getattr(v, "value", v) for v in value] if value else None
    if info.default is PydanticUndefined or info.default is None:
        return None
    return getattr(info.default, "value", info.default)


def _doc(model: type[pydantic.BaseModel]) -> str:
    doc = model.__doc__
    if not doc:
        raise SchemaError(f"{model.__name__} has no docstring")
    return " ".join(doc.split())
