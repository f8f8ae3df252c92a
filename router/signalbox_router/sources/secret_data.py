"""Reading API keys out of Secret objects, where a bad value must not take the watcher down.

A Secret's ``data`` is base64 of arbitrary bytes; an API key must be UTF-8 text. Both modes
(the Kubernetes watch and the manifests folder) decode through :func:`decode`, which says which
key is bad and why, and never repeats the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


class SecretDataError(ValueError):
    """A Secret key whose value cannot be used; the message names the key, never the value."""


def decode_one(key: str, value: Any) -> str:
    """One ``data`` value as the text it holds, stripped of surrounding whitespace."""
    if not isinstance(value, str):
        raise SecretDataError(f"data.{key} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise SecretDataError(f"data.{key} is not valid base64") from None
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretDataError(f"data.{key} is not UTF-8 text") from None


def decode(secret: Mapping[str, Any]) -> dict[str, str]:
    """Every key of a Secret (``data`` decoded, ``stringData`` as is); SecretDataError if any
    key is unusable."""
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        raise SecretDataError("data and stringData must be maps")
    out = {str(k): decode_one(str(k), v) for k, v in data.items()}
    out.update({str(k): str(v).strip() for k, v in string_data.items()})
    return out
