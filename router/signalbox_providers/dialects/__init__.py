"""How to speak to each provider type: one dialect object per type, in one module per type.

Callers ask ``dialect(provider_type)`` and never branch on the type themselves: what a type
serves besides OpenAI chat is data on its dialect (``speaks``), and every request is built from
one ``RequestParts``. Every module in this package that defines ``DIALECTS`` (a mapping from
provider type to dialect) is registered, so adding a provider type is one module here plus its
enum value (tests/unit/signalbox_router/test_new_dialect.py proves a dialect registered in a
test alone is routed).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from signalbox_api.provider import ProviderType
from signalbox_providers.dialects.base import (
    PROBE_PROMPT,
    Answer,
    ClientApi,
    HttpCall,
    InvalidAnswer,
    Kind,
    Outbound,
    RequestParts,
    StreamFailed,
    StreamTranslator,
    Unsupported,
    root_of,
)
from signalbox_providers.dialects.openai import Dialect
from signalbox_providers.translate.openai_format import TranslationError

__all__ = [
    "DIALECTS",
    "PROBE_PROMPT",
    "Answer",
    "ClientApi",
    "Dialect",
    "HttpCall",
    "InvalidAnswer",
    "Kind",
    "Outbound",
    "RequestParts",
    "StreamFailed",
    "StreamTranslator",
    "TranslationError",
    "Unsupported",
    "dialect",
    "root_of",
]


def _registry() -> dict[ProviderType, Dialect]:
    found: dict[ProviderType, Dialect] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        table: Mapping[ProviderType, Dialect] = getattr(module, "DIALECTS", {})
        for ptype, value in table.items():
            if ptype in found:
                raise RuntimeError(f"two dialects for {ptype.value}")
            found[ptype] = value
    return found


DIALECTS: Mapping[ProviderType, Dialect] = _registry()


def dialect(provider_type: ProviderType) -> Dialect:
    return DIALECTS[provider_type]
