"""What one fake provider instance knows: its flavor, models, switchable faults and a request log.

Faults change at run time, from Python (``provider.set_faults(...)``) or over HTTP
(``PUT /_fake/faults``), so a test can break and heal a provider that another process uses.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time
from dataclasses import dataclass, field
from typing import Any

import pydantic
from opentelemetry import trace


class Flavor(enum.StrEnum):
    """Which provider the instance plays; each serves that provider's routes only."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OLLAMA = "ollama"
    VLLM = "vllm"
    LOCALAI = "localai"
    AZURE = "azure"
    LLAMACPP = "llamacpp"  # llama.cpp's OpenAI-compatible server (see fake/llamacpp.py)


class Faults(pydantic.BaseModel):
    """Misbehaviour to inject. Every field defaults to "behave"."""

    model_config = pydantic.ConfigDict(extra="forbid")

    status: int | None = pydantic.Field(
        default=None, ge=400, le=599, description="Answer API calls with this error status."
    )
    times: int | None = pydantic.Field(
        default=None, ge=1, description="Apply `status` to this many requests, then behave."
    )
    retry_after: float | None = pydantic.Field(
        default=None, ge=0, description="Retry-After seconds sent with a 429."
    )
    latency: float = pydantic.Field(default=0.0, ge=0, le=600, description="Seconds added.")
    hang: bool = pydantic.Field(default=False, description="Never answer (until cleared).")
    cut_stream_after: int | None = pydantic.Field(
        default=None, ge=0, description="Drop the connection after this many stream chunks."
    )
    stall_stream_after: int | None = pydantic.Field(
        default=None,
        ge=0,
        description="Go silent, connection open, after this many stream chunks (until cleared).",
    )
    chunk_interval: float = pydantic.Field(
        default=0.0,
        ge=0,
        le=60,
        description="Pace streams: seconds of pause before each chunk after the first.",
    )
    malformed: bool = pydantic.Field(default=False, description="Send invalid JSON with a 200.")
    api_key: str | None = pydantic.Field(
        default=None, description="Require this API key (401 otherwise)."
    )
    reply_words: int | None = pydantic.Field(
        default=None, ge=0, le=100_000, description="Reply with exactly this many words."
    )


@dataclass(frozen=True)
class SeenRequest:
    """A request as the fake saw it; auth values are reduced to whether they matched."""

    method: str
    path: str
    model: str | None
    authorized: bool | None
    header_names: tuple[str, ...]
    body: dict[str, Any] | None
    at: float
    request_id: str | None = None  # the X-Request-Id header, which the router passes on


@dataclass
class VllmGauges:
    """Values served on vLLM's /metrics."""

    waiting: float = 0.0
    running: float = 0.0
    kv_cache_usage: float = 0.0


@dataclass
class FakeState:
    name: str
    flavor: Flavor
    models: list[str]
    faults: Faults = field(default_factory=Faults)
    vllm: VllmGauges = field(default_factory=VllmGauges)
    seen: collections.deque[SeenRequest] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    served: int = 0
    unhang: asyncio.Event | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    tracer: trace.Tracer | None = None  # continue each caller's trace with a span of its own

    def take_status_fault(self) -> int | None:
        """The error status to inject for this request, consuming one of ``times``."""
        status = self.faults.status
        if status is None:
            return None
        if self.faults.times is not None:
            remaining = self.faults.times - 1
            self.faults = self.faults.model_copy(
                update={"times": remaining or None, "status": status if remaining else None}
            )
        return status
