"""Which providers may take a model's traffic: one rule for the operator and the router.

The operator writes this rule's verdicts into RoutingPolicy status; the router applies it to
every request (in manifests mode alone, in Kubernetes mode to the operator's provider verdicts,
and in both adding its own breaker and 429 cooling). Both call these functions, so a provider
that a policy's status calls eligible is one the router sends that policy's traffic to.

The rule, checked in this order (the first that applies is the reason):

1. ``NotFound``: the policy names an LLMProvider that does not exist.
2. ``Suspended``, ``CircuitOpen``, ``RateLimited``, ``Unhealthy``: the provider's own state as the
   operator wrote it (see ``state``): not Ready, or Ready for an older generation, is Unhealthy.
3. The model the provider would serve: the policy reference's ``model``; else the requested name
   (or alias) when the provider declares it; else, for a provider that declares no models, the
   requested name as is; else, for a name a policy serves, the first declared model that meets
   everything below (one declaring the request's needs before one declaring nothing). When
   there is none: ``CapabilityMismatch``.
4. ``CapabilityMismatch``: a policy's ``requirements`` are a promise to its clients, so only what
   a provider declares meets them: ``tiers`` the provider's tier, ``capabilities`` the model's
   declared capabilities, ``minContextWindow`` its declared ``contextWindow``. A model that
   declares no capabilities (or a provider that declares no models) meets no capability and no
   context-window requirement: declare them to use such a policy.
   A request's own needs (tools, images, JSON mode, streaming) are weaker: a model that declares
   capabilities must have them, one that declares none is taken to handle any request.

A model name resolves to one policy (``find_policy``): an exact name beats a glob, and among
equals the oldest policy wins (then the name). ``conflicts`` says what a policy loses that way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from signalbox_api import conditions, selectors
from signalbox_api.conditions import ConditionType, Reason
from signalbox_api.policy import ProviderRef, Requirements, RoutingPolicySpec
from signalbox_api.provider import (
    Capability,
    CircuitState,
    LLMProviderSpec,
    LLMProviderStatus,
    ModelSpec,
)

# Reasons the provider's own state gives, in the order they are checked.
STATE_REASONS = (Reason.SUSPENDED, Reason.CIRCUIT_OPEN, Reason.RATE_LIMITED, Reason.UNHEALTHY)
GLOB_CHARS = frozenset("*?[")


def state(
    spec: LLMProviderSpec, status: LLMProviderStatus, generation: int | None
) -> Reason | None:
    """Why the operator's status keeps a provider out of all traffic, or None when it is usable."""
    if spec.suspend:
        return Reason.SUSPENDED
    if status.circuit is not None and status.circuit.state == CircuitState.OPEN:
        return Reason.CIRCUIT_OPEN
    available = conditions.find(status.conditions, ConditionType.AVAILABLE)
    if available is not None and available.reason == Reason.RATE_LIMITED:
        return Reason.RATE_LIMITED
    ready = conditions.find(status.conditions, ConditionType.READY)
    if ready is None or ready.status != "True" or status.observed_generation != generation:
        return Reason.UNHEALTHY
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One provider's answer for one name: Reason.READY with the model to use, or why not."""

    reason: Reason
    model: str | None = None  # the upstream model name; None where the name is not known
    declared: ModelSpec | None = None  # what the provider declares of that model

    @property
    def eligible(self) -> bool:
        return self.reason == Reason.READY


def meets(
    model: ModelSpec | None,
    tier_ok: bool,
    requirements: Requirements | None,
    needs: frozenset[Capability] = frozenset(),
) -> bool:
    """Whether a (declared or undeclared) model meets a policy's requirements and a request's
    needs; see the module docstring."""
    if not tier_ok:
        return False
    if requirements is not None:
        wanted = requirements.capabilities
        minimum = requirements.min_context_window
        if (wanted or minimum is not None) and model is None:
            return False
        if model is not None and not set(wanted) <= set(model.capabilities):
            return False
        if minimum is not None and (model is None or (model.context_window or 0) < minimum):
            return False
    if needs and model is not None and model.capabilities:
        return needs <= set(model.capabilities)
    return True


def verdict(
    spec: LLMProviderSpec | None,
    provider_state: Reason | None,
    requested: str | None,
    ref: ProviderRef | None,
    *,
    requirements: Requirements | None = None,
    needs: frozenset[Capability] = frozenset(),
    in_policy: bool = True,
) -> Verdict:
    """The rule for one provider and one requested name (None: a name the provider does not
    declare, as a glob admits). Direct routes (no policy) pass ``in_policy=False``."""
    if spec is None:
        return Verdict(Reason.NOT_FOUND)
    if provider_state is not None:
        return Verdict(provider_state)
    tier_ok = (
        requirements is None
        or not requirements.tiers
        or spec.effective_tier() in requirements.tiers
    )
    if ref is not None and ref.model:
        chosen: tuple[str | None, ModelSpec | None] | None = (ref.model, spec.model(ref.model))
    elif requested is not None and (declared := spec.model(requested)) is not None:
        chosen = (declared.name, declared)
    elif not spec.models:
        chosen = (requested, None)
    elif in_policy:
        fits = [m for m in spec.models if meets(m, tier_ok, requirements, needs)]
        # One that declares what the request needs goes before one that declares nothing.
        fit = next((m for m in fits if needs <= set(m.capabilities)), fits[0] if fits else None)
        chosen = (fit.name, fit) if fit is not None else None
    else:
        chosen = None
    if chosen is None or not meets(chosen[1], tier_ok, requirements, needs):
        return Verdict(Reason.CAPABILITY_MISMATCH)
    return Verdict(Reason.READY, chosen[0], chosen[1])


def names_for(spec: RoutingPolicySpec, provider: LLMProviderSpec) -> list[str | None]:
    """The names of a policy's traffic that can reach ``provider`` differently: each exact
    name, each declared model or alias a glob matches, and (None) any other name a glob admits."""
    out: list[str | None] = []
    globs = [m for m in spec.models if GLOB_CHARS & set(m)]
    out += [m for m in spec.models if m not in globs]
    declared = [n for m in provider.models for n in (m.name, *m.aliases)]
    out += [n for n in declared if n not in out and any(fnmatch.fnmatchcase(n, g) for g in globs)]
    if globs:
        out.append(None)
    return out


def policy_verdict(
    spec: RoutingPolicySpec,
    provider: LLMProviderSpec | None,
    provider_state: Reason | None,
    ref: ProviderRef | None,
) -> Verdict:
    """The policy-wide verdict (for its status): eligible when some name the policy serves can
    go to the provider, before any request's own needs; else the first name's reason."""
    if provider is None:
        return Verdict(Reason.NOT_FOUND)
    first: Verdict | None = None
    for name in names_for(spec, provider):
        found = verdict(provider, provider_state, name, ref, requirements=spec.requirements)
        if found.eligible:
            return found
        first = first or found
    return first or Verdict(Reason.CAPABILITY_MISMATCH)


def resolve(spec: RoutingPolicySpec, labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The provider names a policy refers to: its list in its order, or, sorted by name, the
    providers (name → labels) its selector matches."""
    if spec.providers is not None:
        return [p.name for p in spec.providers]
    selector = spec.provider_selector
    if selector is None:
        return []
    return sorted(n for n, v in labels.items() if selectors.matches(selector, v))


def effective(ref: ProviderRef | None, provider: LLMProviderSpec | None) -> tuple[int, int]:
    """Priority and weight: the policy reference's overrides, else the provider's own."""
    priority = ref.priority if ref and ref.priority is not None else None
    weight = ref.weight if ref and ref.weight is not None else None
    if priority is None:
        priority = provider.priority if provider else 0
    if weight is None:
        weight = provider.weight if provider else 0
    return priority, weight


class Claimant(Protocol):
    """A RoutingPolicy as the model-name rule sees it; ``created`` sorts oldest first."""

    @property
    def name(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def spec(self) -> RoutingPolicySpec: ...


P = TypeVar("P", bound=Claimant)


def find_policy(model: str, policies: Iterable[P]) -> P | None:
    """The policy serving ``model``: an exact name beats a glob; then the oldest, then by name."""
    exact: P | None = None
    globbed: P | None = None
    for p in policies:
        if model in p.spec.models:
            exact = p if exact is None or _age(p) < _age(exact) else exact
        elif exact is None and any(fnmatch.fnmatchcase(model, m) for m in p.spec.models):
            globbed = p if globbed is None or _age(p) < _age(globbed) else globbed
    return exact if exact is not None else globbed


@dataclass(frozen=True)
class Conflict:
    """A model name (or a whole glob) a policy claims and another one, older, serves."""

    model: str
    winner: str


def conflicts(policy: P, policies: Sequence[P], known: Iterable[str] = ()) -> list[Conflict]:
    """What ``policy`` loses to older policies claiming the same names: an exact name another
    policy lists too, a glob another lists identically, and each ``known`` name (declared
    models and aliases) its globs match that an older glob takes. An exact name taking a
    name from a glob is the rule working, not a conflict."""
    others = [p for p in policies if p.name != policy.name]
    mine = (policy.created, policy.name)
    older = [p for p in others if (p.created, p.name) < mine]
    out: dict[str, str] = {}
    globs = [m for m in policy.spec.models if GLOB_CHARS & set(m)]
    for entry in policy.spec.models:
        first = min((p for p in older if entry in p.spec.models), default=None, key=_age)
        if first is not None:
            out[entry] = first.name
    alive = [g for g in globs if g not in out]
    exact_elsewhere = {m for p in others for m in p.spec.models if not GLOB_CHARS & set(m)}
    for name in known:
        if name in out or name in policy.spec.models or name in exact_elsewhere:
            continue
        if any(fnmatch.fnmatchcase(name, g) for g in alive):
            winner = find_policy(name, [policy, *older])
            if winner is not None and winner.name != policy.name:
                out[name] = winner.name
    return [Conflict(m, w) for m, w in out.items()]


def _age(p: Claimant) -> tuple[str, str]:
    return (p.created, p.name)
