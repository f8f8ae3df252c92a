"""Bad requests to the real router process: every one is answered in the OpenAI error shape, none
reaches a provider, and the router keeps serving. Also client API keys: required off loopback,
and checked when configured.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.cluster import REPO
from tests.support.router import (
    RouterProcess,
    openai_error,
    provider,
    router_env,
    running_fakes,
    running_router,
)

MODEL = "gpt-4o-mini"
EMBED = "text-embedding-3-small"
MAX_BODY = 1000
MESSAGES = [{"role": "user", "content": "hi"}]
CLIENT_KEYS = ("sbx-client-key-one", "sbx-client-key-two")


@dataclass
class World:
    router: RouterProcess
    fake: FakeProvider


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fake = FakeProvider("upstream", Flavor.OPENAI, [MODEL, EMBED])
    with running_fakes(fake):
        docs = [provider("upstream", "OpenAICompatible", fake.base_url, models=[MODEL, EMBED])]
        folder = tmp_path_factory.mktemp("router-bad-input") / "manifests"
        with running_router(folder, docs, "--max-body", str(MAX_BODY)) as router:
            yield World(router, fake)


def _post_json(world: World, path: str, body: Any) -> httpx.Response:
    """POST ``body`` as JSON text, whatever it is (httpx's json= sends nothing for None)."""
    headers = {"content-type": "application/json"}
    return world.router.post(path, content=json.dumps(body).encode(), headers=headers)


def _still_serving(world: World, before: int) -> None:
    """Nothing of the bad request reached the provider, and a good one still works."""
    assert len(world.fake.seen) == before, "a bad request reached the provider"
    resp = world.router.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from upstream. You said: hi"


CHAT_CASES: dict[str, tuple[Any, str | None]] = {
    # id: (body, the ``param`` the error names)
    "array body": ([MODEL, MESSAGES], None),
    "string body": ("hello", None),
    "null body": (None, None),
    "number body": (42, None),
    "missing model": ({"messages": MESSAGES}, "model"),
    "empty model": ({"model": "", "messages": MESSAGES}, "model"),
    "model not a string": ({"model": 4, "messages": MESSAGES}, "model"),
    "missing messages": ({"model": MODEL}, "messages"),
    "empty messages": ({"model": MODEL, "messages": []}, "messages"),
    "messages not an array": ({"model": MODEL, "messages": "hi"}, "messages"),
    "message not an object": ({"model": MODEL, "messages": ["hi"]}, "messages[0].role"),
    "unknown role": (
        {"model": MODEL, "messages": [*MESSAGES, {"role": "robot", "content": "x"}]},
        "messages[1].role",
    ),
    "stream not a boolean": ({"model": MODEL, "messages": MESSAGES, "stream": "yes"}, "stream"),
    "negative max_tokens": (
        {"model": MODEL, "messages": MESSAGES, "max_tokens": -1},
        "max_tokens",
    ),
    "zero max_tokens": ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    "max_tokens a string": (
        {"model": MODEL, "messages": MESSAGES, "max_tokens": "10"},
        "max_tokens",
    ),
    "max_tokens a boolean": (
        {"model": MODEL, "messages": MESSAGES, "max_tokens": True},
        "max_tokens",
    ),
    "max_tokens a float": (
        {"model": MODEL, "messages": MESSAGES, "max_tokens": 1.5},
        "max_tokens",
    ),
    "negative max_completion_tokens": (
        {"model": MODEL, "messages": MESSAGES, "max_completion_tokens": -5},
        "max_completion_tokens",
    ),
    "tools not an array": ({"model": MODEL, "messages": MESSAGES, "tools": "x"}, "tools"),
    "stream_options not an object": (
        {"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": "yes"},
        "stream_options",
    ),
    "stream_options an array": (
        {"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": ["x"]},
        "stream_options",
    ),
    "stop a number": ({"model": MODEL, "messages": MESSAGES, "stop": 5}, "stop"),
    "stop with a number": ({"model": MODEL, "messages": MESSAGES, "stop": ["x", 1]}, "stop"),
}


@pytest.mark.parametrize(("body", "param"), CHAT_CASES.values(), ids=CHAT_CASES.keys())
def test_invalid_chat_requests_are_400(world: World, body: Any, param: str | None) -> None:
    before = len(world.fake.seen)
    error = openai_error(_post_json(world, "/v1/chat/completions", body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request"
    _still_serving(world, before)


EMBEDDING_CASES: dict[str, tuple[Any, str | None]] = {
    "missing input": ({"model": EMBED}, "input"),
    "empty input": ({"model": EMBED, "input": []}, "input"),
    "empty string input": ({"model": EMBED, "input": ""}, "input"),
    "number input": ({"model": EMBED, "input": 5}, "input"),
    "missing model": ({"input": "x"}, "model"),
    "array body": (["x"], None),
}


@pytest.mark.parametrize(("body", "param"), EMBEDDING_CASES.values(), ids=EMBEDDING_CASES.keys())
def test_invalid_embedding_requests_are_400(world: World, body: Any, param: str | None) -> None:
    before = len(world.fake.seen)
    error = openai_error(_post_json(world, "/v1/embeddings", body), 400)
    assert error["param"] == param
    _still_serving(world, before)


@pytest.mark.parametrize(
    "raw",
    [b'{"model": "gpt-4o-mini", "messages": [', b"", b"not json", b"\xff\xfe{}", b"{'a': 1}"],
    ids=["truncated", "empty", "text", "bad utf-8", "single quotes"],
)
def test_malformed_json_is_400(world: World, raw: bytes) -> None:
    before = len(world.fake.seen)
    resp = world.router.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    error = openai_error(resp, 400)
    assert error["code"] == "invalid_json"
    _still_serving(world, before)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/edits"),
        ("GET", "/v2/models"),
        ("POST", "/v1/chat/completions/"),
        ("GET", "/"),
        ("GET", "/v1/models/gpt-4o-mini"),
    ],
)
def test_unknown_paths_are_404(world: World, method: str, path: str) -> None:
    before = len(world.fake.seen)
    resp = httpx.request(
        method, world.router.url + path, json={"model": MODEL}, trust_env=False, timeout=10
    )
    error = openai_error(resp, 404)
    assert error["code"] == "unknown_url"
    assert path in error["message"]
    _still_serving(world, before)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/chat/completions", "POST"),
        ("GET", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/metrics", "GET"),
    ],
)
def test_wrong_methods_are_405(world: World, method: str, path: str, allowed: str) -> None:
    before = len(world.fake.seen)
    resp = httpx.request(method, world.router.url + path, trust_env=False, timeout=10)
    error = openai_error(resp, 405)
    assert error["code"] == "method_not_allowed"
    assert allowed in error["message"]
    _still_serving(world, before)


def test_an_oversized_body_is_413(world: World) -> None:
    before = len(world.fake.seen)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (2 * MAX_BODY)}]}
    error = openai_error(world.router.post("/v1/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large"
    assert str(MAX_BODY) in error["message"]
    # Just under the limit is fine.
    small = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (MAX_BODY - 200)}]}
    assert len(json.dumps(small)) < MAX_BODY
    assert world.router.post("/v1/chat/completions", json=small).status_code == 200
    assert len(world.fake.seen) == before + 1
    _still_serving(world, before + 1)


def test_an_unknown_capability_in_explain_is_400(world: World) -> None:
    resp = world.router.get("/v1/explain", params={"model": MODEL, "capabilities": "telepathy"})
    error = openai_error(resp, 400)
    assert error["param"] == "capabilities"
    ok = world.router.get("/v1/explain", params={"model": MODEL, "capabilities": "chat,tools"})
    assert ok.status_code == 200
    assert [e["provider"] for e in ok.json()["eligible"]] == ["upstream"]


def test_the_sdk_sees_bad_requests_as_bad_request_errors(world: World) -> None:
    client = openai.OpenAI(base_url=world.router.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[], timeout=10)
    assert err.value.param == "messages"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, timeout=10)
    assert missing.value.code == "model_not_found"


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_changes_are_picked_up_and_broken_ones_refused(tmp_path: Path) -> None:
    fake = FakeProvider("reloaded", Flavor.OPENAI, [MODEL, "gpt-4o"])

    def upstream(*models: str) -> dict[str, Any]:
        return provider("one", "OpenAICompatible", fake.base_url, models=list(models))

    with running_fakes(fake), running_router(tmp_path / "m", [upstream(MODEL)]) as router:

        def status(model: str) -> int:
            body = {"model": model, "messages": MESSAGES}
            return router.post("/v1/chat/completions", json=body).status_code

        assert (status(MODEL), status("gpt-4o")) == (200, 404)
        router.reload([upstream(MODEL, "gpt-4o")])
        assert (status(MODEL), status("gpt-4o")) == (200, 200)
        assert "reloaded manifests" in router.log()

        broken = upstream(MODEL)
        broken["spec"]["type"] = "NoSuchType"
        router.reload([broken])
        # The log names the file, the object and the field.
        assert "keeping the previous manifests" in router.log()
        assert "resources.yaml: LLMProvider one: spec.type:" in router.log()
        assert (status(MODEL), status("gpt-4o")) == (200, 200), "the last good manifests serve on"


# -- client API keys -----------------------------------------------------------------------------


def test_a_non_loopback_router_without_client_keys_refuses_to_start(tmp_path: Path) -> None:
    router = RouterProcess(tmp_path / "manifests", tmp_path / "router.log", host="0.0.0.0")
    router.write([])
    done = subprocess.run(
        router.command(),
        env=router_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "non-loopback" in done.stderr
    assert "--api-keys-file" in done.stderr
    assert "Traceback" not in done.stderr, "a clear message, not a crash"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{router.port}/healthz", trust_env=False, timeout=2)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, FakeProvider]]:
    fake = FakeProvider("keyed", Flavor.OPENAI, [MODEL])
    root = tmp_path_factory.mktemp("router-keys")
    keys = root / "client-keys"
    keys.write_text(f"# one key per line\n{CLIENT_KEYS[0]}\n\n  {CLIENT_KEYS[1]}  \n")
    with running_fakes(fake):
        docs = [provider("keyed", "OpenAICompatible", fake.base_url, models=[MODEL])]
        with running_router(
            root / "manifests", docs, "--api-keys-file", str(keys), log_path=root / "router.log"
        ) as router:
            yield router, fake


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-key",
        f"Bearer {CLIENT_KEYS[0]}x",
        CLIENT_KEYS[0],
        "Bearer",
        f"Basic {CLIENT_KEYS[0]}",
    ],
    ids=["missing", "wrong", "longer", "no scheme", "empty", "other scheme"],
)
def test_with_client_keys_a_bad_key_is_401(
    keyed: tuple[RouterProcess, FakeProvider], authorization: str | None
) -> None:
    router, fake = keyed
    before = len(fake.seen)
    headers = {"authorization": authorization} if authorization is not None else {}
    body = {"model": MODEL, "messages": MESSAGES}
    error = openai_error(router.post("/v1/chat/completions", json=body, headers=headers), 401)
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "authentication_error"
    assert openai_error(router.get("/v1/models", headers=headers), 401)
    assert len(fake.seen) == before
    assert router.get("/healthz").status_code == 200  # probes need no key


@pytest.mark.parametrize("key", CLIENT_KEYS)
def test_with_client_keys_the_right_key_works(
    keyed: tuple[RouterProcess, FakeProvider], key: str
) -> None:
    router, fake = keyed
    client = openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0, timeout=10)
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.choices[0].message.content == "Hello from keyed. You said: hi"
    assert MODEL in [m.id for m in client.models.list()]
    assert "authorization" not in fake.seen[-1].header_names, "client keys are not forwarded"
    wrong = openai.OpenAI(base_url=router.base_url, api_key="nope", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert not any(k in router.log() for k in CLIENT_KEYS)


def test_with_client_keys_each_key_sees_only_its_own_usage(
    keyed: tuple[RouterProcess, FakeProvider],
) -> None:
    router, _ = keyed
    one, two = (
        openai.OpenAI(base_url=router.base_url, api_key=k, max_retries=0, timeout=10)
        for k in CLIENT_KEYS
    )

    def usage(key: str) -> dict[str, Any]:
        resp = router.get("/v1/usage", headers={"authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def requests(key: str) -> int:
        return sum(row["request_count"] for row in usage(key)["data"])

    before = (requests(CLIENT_KEYS[0]), requests(CLIENT_KEYS[1]))
    for _ in range(3):
        one.chat.completions.create(model=MODEL, messages=MESSAGES)
    two.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert requests(CLIENT_KEYS[0]) == before[0] + 3
    assert requests(CLIENT_KEYS[1]) == before[1] + 1
    assert not any(k in json.dumps(usage(CLIENT_KEYS[0])) for k in CLIENT_KEYS)


def test_a_key_file_that_is_a_folder_is_named_in_readyz_and_nothing_goes_without_auth(
    tmp_path: Path,
) -> None:
    fake = FakeProvider("locked", Flavor.OPENAI, [MODEL])
    secrets = tmp_path / "secrets"
    (secrets / "creds" / "api-key").mkdir(parents=True)  # a folder where the key should be
    auth = {"secretRef": {"name": "creds", "key": "api-key"}, "header": "Authorization"}
    with running_fakes(fake):
        docs = [provider("locked", "OpenAICompatible", fake.base_url, models=[MODEL], auth=auth)]
        args = ("--secrets-dir", str(secrets))
        with running_router(tmp_path / "manifests", docs, *args) as router:
            ready = router.get("/readyz").json()
            problems = "\n".join(ready["problems"])
            assert str(secrets / "creds" / "api-key") in problems
            assert "not a regular file" in problems
            resp = router.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
            assert openai_error(resp, 503)["code"] == "no_eligible_provider"
            assert fake.seen == [], "no request without auth"
