"""The provider test suite: the checks a provider's declared capabilities call for.

``signalbox-check`` runs it from a terminal and the operator runs it once when an LLMProvider
carries ``signalbox.dev/self-test=run``. Each check sends one small real request the way the
router would (through the type's dialect, so every provider type is spoken to in its own wire
format and answered in OpenAI's shape) and judges the answer: list models, chat, streaming (with
time to first token), tools, JSON mode, vision, embeddings, and the context window (what the
provider reports against what the spec declares). A check a provider declares no model for is
skipped, not failed. Checks cost tokens, so nothing runs them on a schedule. Messages never
hold keys or response bodies.

The suite is bounded as probes are, whatever the provider does: every answer is read through
the probes' bounded reader (``MAX_ANSWER`` bytes, inflation included; a stream is never
inflated), each check has one deadline for all of it (``timeout``), and the whole suite has
``SUITE_SECONDS``; a check it does not reach in time fails as such.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from signalbox_api import discovered
from signalbox_api.provider import (
    Capability,
    LLMProviderSpec,
    LLMProviderStatus,
    ModelSpec,
    ObservedModel,
)
from signalbox_operator.probing import http_probe
from signalbox_operator.selftest import checks
from signalbox_operator.status.provider_status import Refs
from signalbox_providers import dialects
from signalbox_providers.dialects import Dialect, Kind, RequestParts
from signalbox_providers.model_facts import ModelFacts
from signalbox_providers.outcomes import Outcome

MAX_ANSWER = 1024 * 1024  # a check's answer (a few tokens) is far smaller
SUITE_SECONDS = 120.0
ORDER = ("listModels", "chat", "streaming", "tools", "jsonMode", "vision", "embeddings")
NEEDS = {
    "chat": Capability.CHAT,
    "streaming": Capability.STREAMING,
    "tools": Capability.TOOLS,
    "jsonMode": Capability.JSON_MODE,
    "vision": Capability.VISION,
    "embeddings": Capability.EMBEDDINGS,
}


@dataclass(frozen=True)
class Result:
    check: str
    passed: bool | None  # None: skipped
    message: str = ""
    model: str | None = None
    latency_ms: int | None = None
    ttft_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": self.passed,
            "model": self.model,
            "latencyMs": self.latency_ms,
            "ttftMs": self.ttft_ms,
            "message": self.message,
        }


@dataclass
class Suite:
    """One provider to test: its spec (with status, for discovered capabilities) and where it is."""

    spec: LLMProviderSpec
    refs: Refs
    client: httpx.AsyncClient
    status: LLMProviderStatus | None = None
    timeout: float = 60.0
    results: list[Result] = field(default_factory=list)
    reported: Mapping[str, ModelFacts] = field(default_factory=dict)  # what the listing said
    limits: http_probe.ProbeLimits = field(
        default_factory=lambda: http_probe.ProbeLimits(max_body=MAX_ANSWER)
    )

    @property
    def dialect(self) -> Dialect:
        return dialects.dialect(self.spec.type)

    def model_for(self, capability: Capability) -> ModelSpec | None:
        spec = discovered.effective(self.spec, self.status)
        return next((m for m in spec.models if capability in m.capabilities), None)

    async def run(self) -> list[Result]:
        ends = time.monotonic() + SUITE_SECONDS
        try:
            async with asyncio.timeout(min(self.timeout, SUITE_SECONDS)):
                listed = await self._list_models()
        except TimeoutError:
            listed = Result("listModels", False, f"no answer within {self.timeout:g}s")
        self.results = [listed]
        for check in ORDER[1:]:
            model = self.model_for(NEEDS[check])
            if model is None:
                self.results.append(Result(check, None, "no model declares it"))
                continue
            left = min(self.timeout, ends - time.monotonic())
            if left <= 0:
                self.results.append(Result(check, False, "the suite's time ran out", model.name))
                continue
            self.results.append(await self._timed(check, model.name, checks.CHECKS[check], left))
        self.results.append(self._context_window())
        return self.results

    async def _timed(
        self,
        check: str,
        model: str,
        body: Callable[[checks.Caller, str], Awaitable[int | None]],
        seconds: float,
    ) -> Result:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                ttft = await body(self, model)
        except (checks.Failed, dialects.InvalidAnswer, dialects.StreamFailed) as exc:
            return Result(check, False, str(exc)[:300], model, _ms(started))
        except http_probe.ProbeFailed as exc:
            return Result(check, False, exc.message[:300], model, _ms(started))
        except TimeoutError:
            return Result(check, False, f"no answer within {seconds:.3g}s", model, _ms(started))
        except httpx.HTTPError as exc:
            return Result(check, False, f"{type(exc).__name__}", model, _ms(started))
        return Result(check, True, "", model, _ms(started), ttft)

    async def _list_models(self) -> Result:
        report = await http_probe.probe(self.client, self.spec, self.refs, known=())
        if report.outcome != Outcome.SUCCESS:
            return Result("listModels", False, report.message[:300], latency_ms=report.latency_ms)
        found = report.models
        self.reported = found.facts if found is not None else {}
        if self.reported and self.status is None:
            models = [
                ObservedModel(
                    name=n, capabilities=sorted(f.capabilities), context_window=f.context_window
                )
                for n, f in self.reported.items()
            ]
            self.status = LLMProviderStatus(models=models)
        listed = len(found.names) if found is not None else 0
        return Result("listModels", True, f"{listed} models listed", latency_ms=report.latency_ms)

    def _context_window(self) -> Result:
        """Each declared window against the one the provider reports (no tokens spent)."""
        pairs: list[tuple[str, int, int]] = []
        for m in self.spec.models:
            f = self.reported.get(m.name) or self.reported.get(f"{m.name}:latest")
            if m.context_window and f is not None and f.context_window:
                pairs.append((m.name, m.context_window, f.context_window))
        if not pairs:
            return Result("contextWindow", None, "nothing both declared and reported")
        short = [f"{n}: declares {d}, provider reports {r}" for n, d, r in pairs if r < d]
        if short:
            return Result("contextWindow", False, "; ".join(short)[:300], pairs[0][0])
        return Result("contextWindow", True, f"{len(pairs)} model(s) fit", pairs[0][0])

    async def call(self, kind: Kind, model: str, body: dict[str, Any]) -> dict[str, Any]:
        url, data, headers = self._outbound(kind, model, body)
        async with self.client.stream(
            "POST", url, content=data, headers=headers, timeout=self.timeout
        ) as resp:
            if resp.status_code // 100 != 2:
                raise checks.Failed(f"HTTP {resp.status_code}")
            raw = await http_probe.read_body(resp, self.limits, f"POST {kind}")
        answer = self.dialect.answer(kind, bytes(raw), model)
        parsed: dict[str, Any] = json.loads(answer.body)
        return parsed

    def _outbound(
        self, kind: Kind, model: str, body: dict[str, Any]
    ) -> tuple[str, bytes, dict[str, str]]:
        d, spec = self.dialect, self.spec
        base = self.refs.base_url or ""
        sent = d.request(RequestParts(kind, base, {"model": model, **body}, model, d.options(spec)))
        header = spec.auth.header if spec.auth else None
        headers = {
            **d.headers(self.refs.api_key, header),
            "content-type": "application/json",
            "accept-encoding": "identity",
        }
        return sent.url, sent.data, headers

    async def stream(self, model: str) -> int | None:
        body = {
            "messages": checks.user(checks.PROMPT),
            "max_tokens": 16,
            "stream": True,
        }
        url, data, headers = self._outbound("chat", model, body)
        translator = self.dialect.stream(model, False)
        started, ttft, text = time.perf_counter(), None, ""
        async with self.client.stream(
            "POST", url, content=data, headers=headers, timeout=self.timeout
        ) as resp:
            if resp.status_code // 100 != 2:
                raise checks.Failed(f"HTTP {resp.status_code}")
            if resp.headers.get("content-encoding", "identity").strip().lower() != "identity":
                raise checks.Failed("the stream came compressed, though asked for identity")
            read = 0
            async for chunk in resp.aiter_raw():
                read += len(chunk)
                if read > MAX_ANSWER:
                    raise checks.Failed(f"the stream went past {MAX_ANSWER} bytes")
                out = translator.feed(chunk)
                if out and ttft is None and b'"content"' in out:
                    ttft = _ms(started)
                text += out.decode(errors="replace")
        text += translator.end().decode(errors="replace")
        if "[DONE]" not in text:
            raise checks.Failed("the stream ended without [DONE]")
        if ttft is None:
            raise checks.Failed("no content arrived in the stream")
        return ttft


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def failed(results: Sequence[Result]) -> list[Result]:
    return [r for r in results if r.passed is False]
