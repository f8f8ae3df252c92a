"""A provider's spec with what it reported of its own models filled in where the spec is silent.

The operator writes into ``status.models`` the capabilities and context windows a provider
reports (Ollama's ``/api/show``, vLLM's ``max_model_len``, OpenRouter's metadata). Routing should
use them for a declared model that declares none, but never over what people declared: the spec
always wins. Both the operator (policy status) and the router (each request) route by the result
of :func:`effective`, so they agree. A provider that declares no models serves any name as is,
and stays that way: discovery never narrows what a provider may serve. Pure.
"""

from __future__ import annotations

from typing import Any

from signalbox_api.provider import LLMProviderSpec, LLMProviderStatus, ObservedModel


def _seen(name: str, found: dict[str, ObservedModel]) -> ObservedModel | None:
    # Ollama lists ``llama3.2:latest`` for a model people call ``llama3.2``.
    return found.get(name) or found.get(f"{name}:latest")


def effective(spec: LLMProviderSpec, status: LLMProviderStatus | None) -> LLMProviderSpec:
    """``spec`` with each declared model's empty ``capabilities`` and missing ``contextWindow``
    taken from status.models; the same object when there is nothing to add."""
    if status is None:
        return spec
    found = {m.name: m for m in status.models if m.capabilities or m.context_window}
    if not found or not spec.models:
        return spec
    models, changed = [], False
    for model in spec.models:
        seen = _seen(model.name, found)
        update: dict[str, Any] = {}
        if seen is not None and not model.capabilities and seen.capabilities:
            update["capabilities"] = list(seen.capabilities)
        if seen is not None and model.context_window is None and seen.context_window:
            update["context_window"] = seen.context_window
        models.append(model.model_copy(update=update) if update else model)
        changed = changed or bool(update)
    return spec.model_copy(update={"models": models}) if changed else spec
