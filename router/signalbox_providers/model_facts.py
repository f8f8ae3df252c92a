"""What a provider says about its own models: capabilities and context windows. Pure.

Providers report this in their own shapes: vLLM puts ``max_model_len`` on each ``/v1/models``
entry; OpenRouter's model list carries ``context_length``, ``architecture.input_modalities`` and
``supported_parameters``; Ollama answers ``POST /api/show`` with ``capabilities`` (``completion,
tools, vision, embedding, thinking``) and ``<architecture>.context_length`` in ``model_info``.
These parsers turn each into :class:`ModelFacts`, ignoring what they do not understand (the
provider controls this text), so the operator can show it and the router can use it where the
spec declares nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalbox_api.provider import Capability

MAX_CONTEXT = 100_000_000  # beyond this, a reported window is taken as nonsense

_OLLAMA = {
    "completion": (Capability.CHAT, Capability.STREAMING),
    "tools": (Capability.TOOLS,),
    "vision": (Capability.VISION,),
    "embedding": (Capability.EMBEDDINGS,),
    "thinking": (Capability.REASONING,),
}
_OPENROUTER_PARAMETERS = {
    "tools": (Capability.TOOLS,),
    "response_format": (Capability.JSON_MODE,),
    "structured_outputs": (Capability.JSON_SCHEMA,),
    "reasoning": (Capability.REASONING,),
}


@dataclass(frozen=True)
class ModelFacts:
    """One model as its provider describes it; empty capabilities: it says nothing about them."""

    capabilities: frozenset[Capability] = frozenset()
    context_window: int | None = None

    @property
    def empty(self) -> bool:
        return not self.capabilities and self.context_window is None


def _window(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    n = int(value)
    return n if 0 < n <= MAX_CONTEXT else None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def from_listing_entry(item: Mapping[str, Any]) -> ModelFacts:
    """One entry of an OpenAI-style ``/models`` list (vLLM, OpenRouter, or plain OpenAI)."""
    window = _window(item.get("max_model_len")) or _window(item.get("context_length"))
    caps: set[Capability] = set()
    params = _strings(item.get("supported_parameters"))
    for param in params:
        caps.update(_OPENROUTER_PARAMETERS.get(param, ()))
    arch = item.get("architecture")
    if isinstance(arch, Mapping):
        inputs = _strings(arch.get("input_modalities"))
        outputs = _strings(arch.get("output_modalities"))
        if "image" in inputs:
            caps.add(Capability.VISION)
        if "text" in outputs:
            caps.update((Capability.CHAT, Capability.STREAMING))
    return ModelFacts(frozenset(caps), window)


def from_listing(body: Any, id_key: str = "id", list_key: str = "data") -> dict[str, ModelFacts]:
    """Facts by model id from an OpenAI-style list; entries that say nothing are left out."""
    items = body.get(list_key) if isinstance(body, Mapping) else None
    out: dict[str, ModelFacts] = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get(id_key), str):
            continue
        facts = from_listing_entry(item)
        if not facts.empty:
            out[item[id_key]] = facts
    return out


def from_ollama_show(body: Any) -> ModelFacts:
    """Ollama's ``/api/show`` answer for one model."""
    if not isinstance(body, Mapping):
        return ModelFacts()
    caps: set[Capability] = set()
    for name in _strings(body.get("capabilities")):
        caps.update(_OLLAMA.get(name, ()))
    info = body.get("model_info")
    window = None
    if isinstance(info, Mapping):
        arch = info.get("general.architecture")
        if isinstance(arch, str):
            window = _window(info.get(f"{arch}.context_length"))
        if window is None:
            found = [v for k, v in info.items() if str(k).endswith(".context_length")]
            window = _window(found[0]) if found else None
    return ModelFacts(frozenset(caps), window)
