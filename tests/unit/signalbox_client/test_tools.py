"""Tool schemas from type hints, and a call's result or error as the text the model reads."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
import pytest

from signalbox_client import loop, tools


class Point(pydantic.BaseModel):
    x: float
    y: float


def distance(a: Point, b: Point, scale: Annotated[float, pydantic.Field(gt=0)] = 1.0) -> float:
    """Distance between two points."""
    return float(((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5) * scale


def test_schema_from_hints_with_nested_models_and_defaults() -> None:
    spec: Any = tools.Tool.of(distance).spec()
    function = spec["function"]
    assert function["name"] == "distance"
    assert function["description"] == "Distance between two points."
    params = function["parameters"]
    assert params["required"] == ["a", "b"]
    assert params["additionalProperties"] is False
    assert params["properties"]["scale"]["exclusiveMinimum"] == 0
    assert params["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert set(params["$defs"]["Point"]["properties"]) == {"x", "y"}


def test_a_call_validates_into_the_hinted_types() -> None:
    tool = tools.Tool.of(distance)
    assert tool.call('{"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}, "scale": 2}') == "10.0"
    bad = tool.call('{"a": {"x": 0}, "b": {"x": 3, "y": 4}, "extra": 1}')
    assert bad.startswith("error: invalid arguments:")
    assert "a.y: Field required" in bad
    assert "extra" in bad
    assert tool.call("not json").startswith("error: invalid arguments:")


def test_signatures_json_cannot_carry_are_refused() -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(TypeError, match="must be named"):
        tools.Tool.of(spread)


def test_names_are_unique_and_controls_become_headers() -> None:
    registry = tools.Registry()
    registry.add(distance)
    with pytest.raises(ValueError, match="registered already"):
        registry.add(distance)
    registry.add(distance, name="distance_again")
    assert [s["function"]["name"] for s in registry.specs()] == ["distance", "distance_again"]
    controls = loop.Controls(priority="sheddable", max_attempts=2, timeout=1.5, failover=False)
    assert controls.headers() == {
        "x-signalbox-priority": "sheddable",
        "x-signalbox-max-attempts": "2",
        "x-signalbox-timeout": "1.5",
        "x-signalbox-failover": "off",
    }
    assert loop.Controls().headers() == {}
