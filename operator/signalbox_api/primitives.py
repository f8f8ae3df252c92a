"""Scalar types shared by both kinds: durations, money, names, and the model base class.

Each type carries its own validation (pattern, length, range) so that the pydantic model and
the CRD schema rendered from it enforce the same rules.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Annotated, Any

import pydantic
from pydantic import StringConstraints
from pydantic.alias_generators import to_camel

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
MONEY_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HTTP_HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
"""A Go-style duration such as ``500ms``, ``30s``, ``5m`` or ``1h30m``."""

Money = Annotated[str, StringConstraints(pattern=MONEY_PATTERN, max_length=16)]
"""A non-negative decimal amount as a string, such as ``"2.50"`` (up to six decimals)."""

DNSLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
DNSSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
"""A model name as the upstream knows it, e.g. ``gpt-4o-mini`` or ``llama3.1:8b``."""


@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> float:
    """Return a Go-style duration (``1m30s``) in seconds; raise ValueError when malformed."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit ms, s, m or h")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(text))


@functools.lru_cache(maxsize=1024)
def parse_money(text: str) -> Decimal:
    """Return a decimal money string as a Decimal; raise ValueError when malformed."""
    if not re.fullmatch(MONEY_PATTERN, text):
        raise ValueError(f"invalid amount {text!r}: use a decimal string such as '2.50'")
    return Decimal(text)


class ApiModel(pydantic.BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, immutable."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
