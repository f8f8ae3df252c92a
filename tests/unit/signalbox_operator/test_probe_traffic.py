"""The probe traffic: identical probes share one, each host is probed at a bounded rate, a
bounded number are out at once, and waiting happens before a probe's deadline starts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from signalbox_api.provider import LLMProviderSpec
from signalbox_operator.probing import http_probe
from signalbox_operator.probing.probe_traffic import ProbeTraffic
from signalbox_operator.status.provider_status import ProbeReport, Refs
from signalbox_providers.outcomes import Outcome


class Upstream:
    """Counts the probes that were really sent, and how many were out at once."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds, self.sent, self.out, self.most = seconds, 0, 0, 0
        self.started: list[float] = []

    async def run(self) -> ProbeReport:
        self.sent += 1
        self.out += 1
        self.most = max(self.most, self.out)
        self.started.append(time.monotonic())
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.out -= 1
        return ProbeReport(Outcome.SUCCESS, datetime.now(UTC), round(self.seconds * 1000))


async def test_identical_probes_share_one() -> None:
    traffic, upstream = ProbeTraffic(), Upstream()
    reports = await asyncio.gather(
        *(traffic.probe("same", "h:1", upstream.run) for _ in range(200))
    )
    assert upstream.sent == 1
    assert all(r is reports[0] for r in reports)


async def test_a_report_serves_identical_probes_for_a_moment_then_a_new_one_is_sent() -> None:
    traffic, upstream = ProbeTraffic(share_seconds=0.2), Upstream(0.01)
    first = await traffic.probe("same", "h:1", upstream.run)
    assert await traffic.probe("same", "h:1", upstream.run) is first
    assert upstream.sent == 1
    await asyncio.sleep(0.25)
    assert await traffic.probe("same", "h:1", upstream.run) is not first
    assert upstream.sent == 2


async def test_a_host_is_probed_at_a_bounded_rate() -> None:
    traffic, upstream = ProbeTraffic(per_host=50), Upstream(0.0)
    began = time.monotonic()
    await asyncio.gather(*(traffic.probe(f"key-{i}", "h:1", upstream.run) for i in range(100)))
    elapsed = time.monotonic() - began
    assert upstream.sent == 100  # different keys: nothing to share
    assert elapsed >= 0.9  # a burst of 50, then 50 a second
    first_second = [t for t in upstream.started if t - began < 0.5]
    assert len(first_second) <= 50 + 25 + 1


async def test_hosts_do_not_wait_for_each_other() -> None:
    traffic, upstream = ProbeTraffic(per_host=5), Upstream(0.0)
    began = time.monotonic()
    await asyncio.gather(*(traffic.probe(i, f"h:{i}", upstream.run) for i in range(100)))
    assert time.monotonic() - began < 0.5
    assert upstream.sent == 100


async def test_a_bounded_number_of_probes_are_out_at_once() -> None:
    traffic, upstream = ProbeTraffic(in_flight=4), Upstream(0.05)
    await asyncio.gather(*(traffic.probe(i, f"h:{i}", upstream.run) for i in range(20)))
    assert upstream.most == 4
    assert upstream.sent == 20


async def test_a_probe_another_waits_for_goes_on_when_its_first_asker_leaves() -> None:
    traffic, upstream = ProbeTraffic(), Upstream(0.1)
    first = asyncio.ensure_future(traffic.probe("same", "h:1", upstream.run))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(traffic.probe("same", "h:1", upstream.run))
    await asyncio.sleep(0.01)
    first.cancel()
    report = await second
    assert report.outcome == Outcome.SUCCESS
    assert upstream.sent == 1


async def test_a_probe_nobody_waits_for_is_cancelled() -> None:
    traffic, upstream = ProbeTraffic(), Upstream(5.0)
    asker = asyncio.ensure_future(traffic.probe("same", "h:1", upstream.run))
    await asyncio.sleep(0.01)
    asker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asker
    await asyncio.sleep(0.01)
    assert upstream.out == 0  # the probe itself was cancelled, not left running


async def test_a_fresh_probe_takes_no_report_begun_before_it() -> None:
    traffic, upstream = ProbeTraffic(), Upstream(0.01)
    first = await traffic.probe("same", "h:1", upstream.run)
    fresh = await traffic.probe("same", "h:1", upstream.run, fresh=True)
    assert fresh is not first
    assert upstream.sent == 2
    assert await traffic.probe("same", "h:1", upstream.run) is fresh  # and others take its


def test_a_probe_identity_tells_what_the_probe_sends() -> None:
    def spec(**changes: object) -> LLMProviderSpec:
        base: dict[str, object] = {
            "type": "OpenAICompatible",
            "endpoint": {"url": "http://h:1/v1"},
            "models": [{"name": "m"}],
        }
        return LLMProviderSpec.model_validate({**base, **changes})

    refs = Refs(base_url="http://h:1/v1", api_key="sk-one")
    same = http_probe.identity(spec(), refs)
    assert http_probe.identity(spec(priority=5), refs) == same  # routing, not probing
    assert http_probe.identity(spec(), Refs(base_url="http://h:1/v1", api_key="sk-two")) != same
    assert http_probe.identity(spec(), Refs(base_url="http://h:2/v1", api_key="sk-one")) != same
    assert http_probe.identity(spec(healthCheck={"mode": "HTTPGet"}), refs) != same
    assert http_probe.identity(spec(models=[{"name": "n"}]), refs) != same
    assert "sk-one" not in repr(same)  # held as a digest
    assert http_probe.host(refs) == "h:1"


async def test_a_provider_is_never_handed_its_own_last_report_again() -> None:
    traffic, upstream = ProbeTraffic(share_seconds=10), Upstream(0.01)
    mine = await traffic.probe("same", "h:1", upstream.run)
    again = await traffic.probe("same", "h:1", upstream.run, had=mine)
    assert again is not mine
    assert upstream.sent == 2
    assert await traffic.probe("same", "h:1", upstream.run, had=mine) is again  # another's
