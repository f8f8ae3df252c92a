"""The router's view of the world: an immutable snapshot of providers and policies.

A watcher (Kubernetes mode) or a loader (manifests mode) builds a new Snapshot whenever
something changes and swaps it in whole; each request reads the snapshot it started with and
never calls the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signalbox_api.policy import RoutingPolicySpec
from signalbox_api.provider import LLMProviderSpec


@dataclass(frozen=True)
class ProviderEntry:
    """One provider as the router may use it. ``api_key`` stays out of repr and logs."""

    name: str
    spec: LLMProviderSpec
    endpoints: tuple[str, ...]  # base URLs; several for in-cluster Services
    labels: Mapping[str, str] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    # The operator's verdict: True/False in Kubernetes mode, None where no operator runs.
    ready: bool | None = None
    reason: str = ""
    # Wall-clock time of the operator's last successful probe (Kubernetes mode), if known.
    last_success: float | None = None

    @property
    def usable(self) -> bool:
        return not self.spec.suspend and self.ready is not False and bool(self.endpoints)


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    spec: RoutingPolicySpec
    created: str = ""  # RFC 3339 creation time; the older policy wins a conflict


@dataclass(frozen=True)
class Snapshot:
    providers: Mapping[str, ProviderEntry] = field(default_factory=dict)
    policies: tuple[PolicyEntry, ...] = ()
    # Model name → policy, filled as requests ask (a new snapshot starts empty).
    policy_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    plan_cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def model_names(self) -> list[str]:
        """Every name a client may ask for: policy model names, declared models and aliases."""
        names: dict[str, None] = {}
        for policy in self.policies:
            for pattern in policy.spec.models:
                if not any(ch in pattern for ch in "*?["):
                    names[pattern] = None
        for entry in self.providers.values():
            for model in entry.spec.models:
                names[model.name] = None
                for alias in model.aliases:
                    names[alias] = None
        return list(names)
