"""The router's Redis options refuse bad values at start, in one line that never echoes a URL's
password; without them nothing about limits changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalbox_api.provider import RateLimit
from signalbox_router import __main__ as cli
from signalbox_router.limits.leases import LeasedWindow
from signalbox_router.limits.limiters import ProviderLimiter


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redis-url", "http://user:hunter2@redis:6379"], "must start with redis://"),
        (["--redis-url", "redis://r:6379", "--redis-fallback-replicas", "0"], "'auto' or a whole"),
        (
            ["--redis-url", "redis://r:6379", "--redis-fallback-replicas", "two"],
            "'auto' or a whole",
        ),
        (["--redis-url", "redis://:hunter2@redis:notaport/0"], "not a usable Redis URL"),
        (["--redis-url", "redis://:hunter2@[::1:6379/0"], "not a usable Redis URL"),
        (["--redis-url", "redis://user:hunter2@r:99999/0"], "not a usable Redis URL"),
    ],
)
def test_bad_redis_options_stop_the_router_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert cli.main(["--manifests", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hunter2" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_url_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALBOX_REDIS_URL", "redis://from-env:6379/0")
    assert cli.parse_args(["--manifests", "x"]).redis_url == "redis://from-env:6379/0"
    monkeypatch.delenv("SIGNALBOX_REDIS_URL")
    assert cli.parse_args(["--manifests", "x"]).redis_url is None


def test_without_redis_limiters_are_built_as_before(tmp_path: Path) -> None:
    app = cli.build_app(cli.parse_args(["--manifests", str(tmp_path)]))
    assert app.state.reports == {}
    limiter = app.state.make_limiter("p", None)
    assert isinstance(limiter, ProviderLimiter)
    assert limiter.unlimited


def test_with_redis_limiters_spend_leased_budgets(tmp_path: Path) -> None:
    args = ["--manifests", str(tmp_path), "--redis-url", "redis://127.0.0.1:1/0"]
    app = cli.build_app(cli.parse_args(args))
    assert app.state.reports["shared_budgets"]() == {
        "mode": "shared",
        "replicas": 8,  # until counted: --redis-expected-replicas
        "since_seconds": pytest.approx(0, abs=1),
    }
    limiter = app.state.make_limiter("p", RateLimit.model_validate({"requestsPerMinute": 60}))
    assert isinstance(limiter.requests, LeasedWindow)
    assert limiter.tokens is None
