"""Shards: the stable hash, rendezvous ownership, and three electors stepping against one
in-memory Lease store on a shared clock (joining, dying, pausing, leaving)."""

from __future__ import annotations

import collections
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import kubernetes
import pytest

from signalbox_operator.kube import Kube
from signalbox_operator.leadership import shards
from signalbox_operator.leadership.leader import Timing
from signalbox_operator.leadership.shard_elector import FORGET_AFTER, LeaseRecords, ShardElector
from signalbox_operator.metrics import Metrics
from signalbox_operator.policies import Policies

COUNT = 6
TIMING = Timing(duration=6, renew_deadline=4, retry_period=1)


def test_shard_of_is_stable_and_in_range() -> None:
    assert shards.shard_of("team-a", "openai", 1) == 0
    # Pinned: a change of hash would move every provider to another shard on upgrade.
    assert [shards.shard_of("team-a", f"p-{i}", 6) for i in range(8)] == [3, 2, 4, 3, 0, 3, 4, 5]
    assert all(0 <= shards.shard_of("ns", f"p-{i}", 7) < 7 for i in range(1000))


def test_shard_of_spreads_evenly() -> None:
    counts = collections.Counter(shards.shard_of("ns", f"p-{i}", COUNT) for i in range(12_000))
    assert set(counts) == set(range(COUNT))
    assert max(counts.values()) < 1.1 * 2000
    assert min(counts.values()) > 0.9 * 2000


@pytest.mark.parametrize(
    ("count", "replicas"), [(6, 3), (6, 6), (12, 5), (16, 8), (64, 3), (64, 8), (7, 7), (3, 5)]
)
def test_assignment_is_balanced_the_same_everywhere_and_moves_little(
    count: int, replicas: int
) -> None:
    members = [f"operator-{i}" for i in range(replicas)]
    placed = shards.assignment(count, members)
    assert sorted(placed) == list(range(count))
    loads = collections.Counter(placed.values())
    assert max(loads.values()) - min(loads.values(), default=0) <= 1
    assert max(loads.values()) == -(-count // replicas)
    assert shards.assignment(count, list(reversed(members))) == placed
    for leaver in members:
        after = shards.assignment(count, [m for m in members if m != leaver])
        held = {i for i, m in placed.items() if m == leaver}
        moved = {i for i in range(count) if placed[i] != after[i]}
        assert held <= moved
        assert len(moved - held) <= (count - len(held)) // 2 + 1, (leaver, held, moved)
    joined = shards.assignment(count, [*members, "newcomer"])
    gained = {i for i, m in joined.items() if m == "newcomer"}
    assert len(gained) >= count // (replicas + 1)
    assert shards.assignment(count, []) == {}


def test_lease_names_are_valid_object_names() -> None:
    assert shards.shard_lease("signalbox-operator", 3, 6) == "signalbox-operator-shard-3-of-6"
    name = shards.member_lease("signalbox-operator", "Pod_Name.example-1234")
    assert name.startswith("signalbox-operator-member-")
    assert name == name.lower()
    assert len(name) < 64


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """The CoordinationV1Api calls the shard elector makes, on in-memory Leases."""

    def __init__(self) -> None:
        self.leases: dict[str, Any] = {}
        self.version = 0
        self.renewed = 0

    def _store(self, body: dict[str, Any]) -> Any:
        self.version += 1
        self.renewed += 1  # a distinct renew time per write, whatever the wall clock says
        spec, meta = body["spec"], body["metadata"]
        lease = SimpleNamespace(
            spec=SimpleNamespace(
                holder_identity=spec["holderIdentity"],
                renew_time=datetime.fromtimestamp(self.renewed),
                lease_duration_seconds=spec["leaseDurationSeconds"],
            ),
            metadata=SimpleNamespace(
                name=meta["name"], labels=meta.get("labels"), resource_version=str(self.version)
            ),
        )
        self.leases[meta["name"]] = lease
        return lease

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> Any:
        if name not in self.leases:
            raise kubernetes.client.ApiException(status=404)
        return self.leases[name]

    def list_namespaced_lease(self, namespace: str, label_selector: str, **_: Any) -> Any:
        key, value = label_selector.split("=")
        items = [
            lease
            for lease in self.leases.values()
            if (lease.metadata.labels or {}).get(key) == value
        ]
        return SimpleNamespace(items=items)

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        if body["metadata"]["name"] in self.leases:
            raise kubernetes.client.ApiException(status=409)
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: dict[str, Any], **_: Any
    ) -> Any:
        current = self.leases.get(name)
        if current is None or body["metadata"].get("resourceVersion") != (
            current.metadata.resource_version
        ):
            raise kubernetes.client.ApiException(status=409)
        return self._store(body)

    def delete_namespaced_lease(self, name: str, namespace: str, **_: Any) -> None:
        if self.leases.pop(name, None) is None:
            raise kubernetes.client.ApiException(status=404)

    def holders(self) -> dict[int, str | None]:
        return {
            i: lease.spec.holder_identity
            for i in range(COUNT)
            if (lease := self.leases.get(shards.shard_lease("op", i, COUNT))) is not None
        }


def replica(store: LeaseStore, identity: str, clock: Clock, count: int = COUNT) -> ShardElector:
    e = ShardElector(
        kubernetes.client.ApiClient(),
        namespace="ns",
        name="op",
        identity=identity,
        count=count,
        timing=TIMING,
        clock=clock,
    )
    e.api = e.records.api = store  # type: ignore[assignment]
    for elector in (*e.shards, e.member):
        elector.api = store  # type: ignore[assignment]
    return e


def rounds(electors: list[ShardElector], clock: Clock, n: int) -> dict[str, set[int]]:
    """``n`` retry periods of every elector stepping; each one's gains minus losses."""
    moved: dict[str, set[int]] = {e.identity: set() for e in electors}
    for _ in range(n):
        for e in electors:
            gained, lost = e.step()
            moved[e.identity] |= gained
            moved[e.identity] -= lost
        clock.now += TIMING.retry_period
    return moved


def expected(members: list[str]) -> dict[int, str]:
    return dict(shards.assignment(COUNT, members))


def test_replicas_settle_on_the_rendezvous_owners_and_hand_over() -> None:
    store, clock = LeaseStore(), Clock()
    a, b, c = (replica(store, who, clock) for who in ("a", "b", "c"))
    rounds([a, b, c], clock, 4)
    assert store.holders() == expected(["a", "b", "c"])
    for e in (a, b, c):
        assert e.held == {i for i, h in expected(["a", "b", "c"]).items() if h == e.identity}
        assert all(e.fence(i).valid() for i in e.held)
        assert e.remaining() > 0

    # C dies: within the lease duration and a retry or two, A and B hold its shards.
    c_held = set(c.held)
    rounds([a, b], clock, int(TIMING.duration) + 2)
    assert store.holders() == expected(["a", "b"])
    assert c_held <= a.held | b.held
    assert c.remaining() <= 0  # its fences ran out before anyone took over

    # C comes back (a pause): its first step loses what it held, its fences stay closed.
    gained, lost = c.step()
    assert lost == c_held
    assert gained == set()
    assert not c.held
    assert all(not c.fence(i).valid() for i in c_held)
    # ... and it rejoins: the others hand its shards back.
    rounds([a, b, c], clock, 4)
    assert store.holders() == expected(["a", "b", "c"])

    # A stops and gives its shards up: the others take them at their next steps.
    a_held = set(a.held)
    a.release_all(lambda gained, lost: None)
    assert all(store.holders()[i] is None for i in a_held)
    assert shards.member_lease("op", "a") not in store.leases
    rounds([b, c], clock, 2)
    assert store.holders() == expected(["b", "c"])


def test_a_replica_alone_holds_every_shard_and_a_failing_api_closes_its_fences() -> None:
    store, clock = LeaseStore(), Clock()
    a = replica(store, "a", clock)
    moved = rounds([a], clock, 3)
    assert moved["a"] == set(range(COUNT))

    def fail(*_: Any, **__: Any) -> Any:
        raise TimeoutError

    store.list_namespaced_lease = fail  # type: ignore[method-assign]
    lost: set[int] = set()
    for _ in range(int(TIMING.renew_deadline) + 1):
        lost |= a.step()[1]
        clock.now += TIMING.retry_period
    assert lost == set(range(COUNT))
    assert not a.held
    assert a.remaining() == 0


def test_a_new_shard_count_waits_for_the_old_replicas_to_stop() -> None:
    """A rollout from 4 shards to 6: the new replica takes nothing while an old one holds a
    live shard Lease, and everything once the old one gives its shards up."""
    store, clock = LeaseStore(), Clock()
    old, new = replica(store, "old", clock, count=4), replica(store, "new", clock)
    rounds([old], clock, 3)
    assert old.held == {0, 1, 2, 3}
    moved = rounds([old, new], clock, 10)
    assert moved["new"] == set()
    assert old.held == {0, 1, 2, 3}  # the old configuration counts only its own members
    old.release_all(lambda gained, lost: None)
    moved = rounds([new], clock, 3)
    assert moved["new"] == set(range(COUNT))


def test_sharded_and_unsharded_replicas_wait_for_each_other() -> None:
    store, clock = LeaseStore(), Clock()
    leader = LeaseRecords(store, "ns", "op", TIMING, clock)
    assert leader() is False  # nothing sharded: the single Lease may be campaigned for
    sharded = replica(store, "s", clock)
    rounds([sharded], clock, 3)
    assert leader() is True
    sharded.release_all(lambda gained, lost: None)
    assert leader() is False  # given up: the holders are empty
    # The single Lease held and renewed: a sharded replica takes nothing.
    store.create_namespaced_lease(
        "ns",
        {
            "metadata": {"name": "op"},
            "spec": {"holderIdentity": "single", "renewTime": "", "leaseDurationSeconds": 6},
        },
    )
    again = replica(store, "t", clock)
    assert rounds([again], clock, 4)["t"] == set()
    clock.now += TIMING.duration  # the single leader stopped renewing long ago
    assert rounds([again], clock, 3)["t"] == set(range(COUNT))


def test_a_member_gone_for_long_is_forgotten() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = replica(store, "a", clock), replica(store, "b", clock)
    rounds([a, b], clock, 3)
    assert shards.member_lease("op", "b") in store.leases
    rounds([a], clock, int(FORGET_AFTER * TIMING.duration) - 1)
    assert shards.member_lease("op", "b") in store.leases  # not yet
    rounds([a], clock, 3)
    assert shards.member_lease("op", "b") not in store.leases
    assert shards.member_lease("op", "a") in store.leases
    assert a.held == set(range(COUNT))


@pytest.mark.parametrize("count", [0, -1])
def test_shards_must_be_positive(count: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShardElector(
            kubernetes.client.ApiClient(), namespace="n", name="o", identity="a", count=count
        )


def test_a_replica_that_loses_a_policys_shard_stops_exporting_it() -> None:
    metrics = Metrics()
    policies = Policies(cast(Kube, None), lambda: datetime.now(UTC), metrics)
    policies.policy_event(("team-a", "chat"), {"metadata": {"name": "chat"}, "spec": {}})
    metrics.policy_eligible.labels("team-a", "chat").set(2)
    policies.written[("team-a", "chat")] = {"conditions": []}
    policies.let_go({("team-a", "chat")})
    assert ("team-a", "chat") not in policies.written
    assert (
        metrics.registry.get_sample_value(
            "signalbox_policy_eligible_providers", {"namespace": "team-a", "policy": "chat"}
        )
        is None
    )
    assert ("team-a", "chat") in policies.policies  # still watched, for when the shard returns
