"""The router's view of the world: an immutable snapshot of providers and policies.

A watcher (Kubernetes mode) or a loader (manifests mode) builds a new Snapshot whenever
something changes and swaps it in whole; each request reads the snapshot it started with and
never calls the API server.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruMap(Generic[K, V]):
    """A map that holds at most ``size`` entries, dropping the least recently used one.

    Requests fill it with what they derive from client input (a model name a glob matches can
    be anything), so it must not grow with that input."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self.size = size

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


PLAN_CACHE_SIZE = 4096


def _plans() -> LruMap[Any, Any]:
    return LruMap(PLAN_CACHE_SIZE)


@dataclass(frozen=True)
class Snapshot:
    providers: Mapping[str, ProviderEntry] = field(default_factory=dict)
    policies: tuple[PolicyEntry, ...] = ()
    # (model name, capabilities) → selection's plan, for names that resolve; a new snapshot
    # starts empty.
    plan_cache: LruMap[Any, Any] = field(default_factory=_plans, compare=False, repr=False)

    def labels(self) -> dict[str, Mapping[str, str]]:
        """Each provider's labels, by name, for policies that select providers by label."""
        return {name: entry.labels for name, entry in self.providers.items()}

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
