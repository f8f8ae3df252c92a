"""A legacy text completions client (``POST /v1/completions``) -> a provider type that still
serves them (OpenAI-style APIs, vLLM, LocalAI and Ollama's OpenAI-compatible API): checked at
the edge, then passed through. The route a chat request would take carries the ``prompt``; only
the model name changes, and a stream asks for usage (for metering) as chat streams do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signalbox_providers.translate.openai_format import JSON, InvalidRequest


class InvalidCompletion(InvalidRequest):
    """The body is not a completions request; ``param`` names the offending field."""


def validate(body: Any) -> JSON:
    """``body`` if it is a completions request the router can route; else InvalidCompletion."""
    if not isinstance(body, dict):
        raise InvalidCompletion("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidCompletion("'model' is required and must be a non-empty string.", "model")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (
        isinstance(prompt, list) and prompt and all(isinstance(p, str | int) for p in prompt)
    ):
        raise InvalidCompletion("'prompt' must be a string or a non-empty array.", "prompt")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise InvalidCompletion("'max_tokens' must be a positive integer.", "max_tokens")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidCompletion("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidCompletion("'stream_options' must be an object.", "stream_options")
    return body


def prompt_chars(body: Mapping[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(p) if isinstance(p, str) else 4 for p in prompt or [])


def upstream_body(body: Mapping[str, Any], model: str) -> JSON:
    out = dict(body)
    out["model"] = model
    if body.get("stream"):
        out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return out
