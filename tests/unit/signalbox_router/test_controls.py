"""The per-request control headers' values, and how they combine with a policy."""

from __future__ import annotations

import pytest

from signalbox_router.forwarding import controls
from signalbox_router.limits.priority import RequestPriority


def test_no_header_keeps_the_policys_settings() -> None:
    assert controls.DEFAULT.attempts(4) == 4
    assert controls.DEFAULT.total(None) is None
    assert controls.DEFAULT.total(7.0) == 7.0


def test_values_are_parsed_and_combined_with_the_policy() -> None:
    got = controls.parse(
        {
            controls.PRIORITY: b" Critical ",
            controls.MAX_ATTEMPTS: b"5",
            controls.TIMEOUT: b"1m30s",
            controls.FAILOVER: b"on",
        }
    )
    assert got.priority == RequestPriority.CRITICAL
    assert got.attempts(3) == 3  # clamped to the policy's
    assert got.attempts(8) == 5
    assert got.total(None) == 90.0
    assert got.total(60.0) == 60.0  # the policy's is the longest a client gets
    assert controls.parse({controls.TIMEOUT: b"2.5"}).timeout == 2.5


def test_failover_off_is_one_attempt() -> None:
    got = controls.parse({controls.FAILOVER: b"OFF", controls.MAX_ATTEMPTS: b"3"})
    assert got.attempts(10) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (controls.MAX_ATTEMPTS, b"-1"),
        (controls.MAX_ATTEMPTS, b"1.5"),
        (controls.TIMEOUT, b"1d"),
        (controls.TIMEOUT, b"0"),
        (controls.TIMEOUT, b"3601"),
        (controls.FAILOVER, b"no"),
        (controls.PRIORITY, b"high"),
    ],
)
def test_bad_values_name_their_header(name: bytes, value: bytes) -> None:
    with pytest.raises(controls.InvalidControl) as raised:
        controls.parse({name: value})
    assert raised.value.header == name.decode()
    assert name.decode() in str(raised.value)


def test_a_huge_number_of_attempts_is_a_400_not_a_crash() -> None:
    with pytest.raises(controls.InvalidControl):
        controls.parse({controls.MAX_ATTEMPTS: b"9" * 4301})


def test_a_control_header_given_twice_is_refused() -> None:
    scope = {"headers": [(controls.PRIORITY, b"critical"), (controls.PRIORITY, b"sheddable")]}
    with pytest.raises(controls.InvalidControl) as raised:
        controls.of_request(scope)
    assert raised.value.header == controls.PRIORITY.decode()
    assert "at most once" in str(raised.value)
