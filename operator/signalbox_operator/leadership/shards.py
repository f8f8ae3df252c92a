"""Which replica works on which object, when the operator runs as several shards. Pure.

The objects (LLMProviders and RoutingPolicies) are split into ``count`` shards by a stable hash
of ``namespace/name`` (``shard_of``), the same in every process and every Python. Each shard has
a Lease of its own; the replica holding a shard's Lease probes and writes that shard's objects,
and nothing else (each shard has its own fence). Which live replica should hold a shard is
rendezvous hashing with bounded load over the replicas' membership Leases (``assignment``):
every replica computes the same answer from the same list, nothing else is shared, each replica
holds its fair share (within one shard), and a replica joining or leaving moves few shards
besides those it gains or held.

Replicas run with another number of shards (a rollout that changes it), or with one Lease
for all, are another configuration: a replica campaigns only while no other configuration
holds a live Lease, so the old replicas work until they stop and give their Leases up.

This is how Kubernetes' own components find their peers (the API servers' identity Leases in
``kube-system``, renewed by each instance and collected by the others once expired), joined to
one ordinary leader-election Lease per shard, so that handing a shard over is the same rule,
with the same fencing, as a single leader's failover (``leader.decide``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

LEASE_LABEL = "signalbox.dev/lease-of"  # on shard and membership Leases: the lease name
ROLE_LABEL = "signalbox.dev/lease-role"  # "shard" or "member"
COUNT_LABEL = "signalbox.dev/shards"  # how many shards the replica that wrote it runs


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shard_of(namespace: str, name: str, count: int) -> int:
    """The shard of the object ``namespace/name``: stable across processes and restarts."""
    if count <= 1:
        return 0
    return _hash(f"{namespace}/{name}") % count


def assignment(count: int, members: Iterable[str]) -> dict[int, str]:
    """Which member should hold each of ``count`` shards: rendezvous hashing with bounded load.
    Every (shard, member) pair has a weight; pairs are taken heaviest first, a shard going to
    its member unless the shard is placed already or the member holds its share (``count //
    members``, one more for ``count % members`` of them). Balanced (the counts differ by at
    most one), the same in every replica whatever the order of ``members``; a member leaving
    moves its own shards and a few others (at most about half the rest; six of 56 for 64 shards
    over eight replicas)."""
    names = sorted(set(members))
    if not names:
        return {}
    fair, spare = divmod(count, len(names))  # ``spare`` members hold one shard more
    pairs = sorted(
        ((_hash(f"{shard}/{m}"), m, shard) for shard in range(count) for m in names), reverse=True
    )
    placed: dict[int, str] = {}
    load = dict.fromkeys(names, 0)
    for _weight, member, shard in pairs:
        if shard in placed or load[member] > fair or (load[member] == fair and not spare):
            continue
        if load[member] == fair:
            spare -= 1
        placed[shard] = member
        load[member] += 1
    return placed


def shard_lease(name: str, shard: int, count: int) -> str:
    """Named for the count too: shard 1 of 4 and shard 1 of 6 hold different objects."""
    return f"{name}-shard-{shard}-of-{count}"


def member_lease(name: str, identity: str) -> str:
    """A membership Lease's name: identities (host names, pids) need not be valid names."""
    return f"{name}-member-{hashlib.blake2b(identity.encode(), digest_size=5).hexdigest()}"
