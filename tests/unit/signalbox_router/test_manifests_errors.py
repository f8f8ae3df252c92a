"""Manifests mode judges every file and object on its own: what is bad keeps its last good
version, and the problem names the file or object and why, never a secret value."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from signalbox_router import supervision
from signalbox_router.sources import folder_watch, manifest_objects, manifests
from signalbox_router.state import RouterState

KEY = "sk-first-key-0001"
NEW_KEY = "sk-second-key-0002"


def provider(name: str, creds: str = "creds", **spec: Any) -> dict[str, Any]:
    body = {
        "type": "OpenAI",
        "endpoint": {"url": f"https://{name}.example/v1"},
        "auth": {"secretRef": {"name": creds, "key": "api-key"}},
        "models": [{"name": "gpt-4o-mini"}],
        **spec,
    }
    return {
        "apiVersion": "signalbox.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": name},
        "spec": body,
    }


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def write(folder: Path, name: str, *docs: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "manifests"
    out.mkdir()
    write(out, "a.yaml", provider("a"), secret("creds", {"api-key": b64(KEY)}))
    write(out, "b.yaml", provider("b", creds="other"), secret("other", {"api-key": b64(KEY)}))
    return out


def _text(loaded: manifests.Loaded) -> str:
    return "\n".join(str(p) for p in loaded.problems)


def test_a_clean_folder_has_no_problems(folder: Path) -> None:
    loaded = manifests.read(folder, environ={})
    assert set(loaded.snapshot.providers) == {"a", "b"}
    assert loaded.snapshot.providers["a"].api_key == KEY
    assert loaded.problems == ()


@pytest.mark.parametrize(
    ("value", "why"),
    [("not base64!", "is not valid base64"), (b64(b"\xff\xfe-key"), "is not UTF-8 text")],
    ids=["bad-base64", "non-utf8"],
)
def test_a_bad_secret_keeps_its_previous_key(folder: Path, value: str, why: str) -> None:
    first = manifests.read(folder, environ={})
    write(folder, "a.yaml", provider("a"), secret("creds", {"api-key": value}))
    write(
        folder, "b.yaml", provider("b", creds="other"), secret("other", {"api-key": b64(NEW_KEY)})
    )
    second = manifests.read(folder, environ={}, previous=first)
    assert second.snapshot.providers["a"].api_key == KEY, "the last good key serves on"
    assert second.snapshot.providers["b"].api_key == NEW_KEY, "the other objects move on"
    assert f"a.yaml: Secret creds: data.api-key {why}" in _text(second)
    assert value not in _text(second)
    assert KEY not in _text(second)


def test_a_bad_secret_with_no_previous_version_is_named(folder: Path) -> None:
    write(folder, "a.yaml", provider("a"), secret("creds", {"api-key": b64(b"\x80abc")}))
    loaded = manifests.read(folder, environ={})
    assert loaded.snapshot.providers["a"].api_key is None
    assert "Secret creds: data.api-key is not UTF-8 text; no previous version" in _text(loaded)


@pytest.mark.parametrize(
    "damage",
    ["bad-yaml", "non-utf8", "dangling-symlink", "too-deep", "too-large"],
)
def test_an_unreadable_file_keeps_what_it_held(folder: Path, tmp_path: Path, damage: str) -> None:
    first = manifests.read(folder, environ={})
    path = folder / "a.yaml"
    if damage == "bad-yaml":
        path.write_text(f"kind: Secret\ndata: {{api-key: {b64(NEW_KEY)}\n  : [unclosed\n")
    elif damage == "non-utf8":
        path.write_bytes(b"kind: LLMProvider\nmetadata: {name: \xff}\n")
    elif damage == "too-deep":
        path.write_text("kind: Secret\ndata: " + "[" * 5000 + "]" * 5000 + "\n")
    elif damage == "too-large":
        path.write_bytes(b"# " + b"x" * manifest_objects.MAX_FILE + b"\nkind: Secret\n")
    else:
        path.unlink()
        path.symlink_to(tmp_path / "nowhere.yaml")
    second = manifests.read(folder, environ={}, previous=first)
    assert set(second.snapshot.providers) == {"a", "b"}
    assert second.snapshot.providers["a"].api_key == KEY
    assert second.snapshot.providers["a"] == first.snapshot.providers["a"]
    text = _text(second)
    assert str(path) in text
    assert "keeping what it held before" in text
    assert b64(NEW_KEY) not in text
    expected = {
        "bad-yaml": "not valid YAML",
        "non-utf8": "not UTF-8 text",
        "dangling-symlink": "cannot be read",
        "too-deep": "nested too deep",
        "too-large": "larger than 8 MiB",
    }
    assert expected[damage] in text


def test_a_file_removed_on_purpose_removes_its_objects(folder: Path) -> None:
    first = manifests.read(folder, environ={})
    (folder / "b.yaml").unlink()
    second = manifests.read(folder, environ={}, previous=first)
    assert set(second.snapshot.providers) == {"a"}
    assert second.problems == ()


def test_an_invalid_object_keeps_its_previous_version_and_the_rest_moves_on(folder: Path) -> None:
    first = manifests.read(folder, environ={})
    broken = provider("a", priority=5000)
    changed = provider("b", creds="other", priority=7)
    write(folder, "a.yaml", broken, secret("creds", {"api-key": b64(KEY)}))
    write(folder, "b.yaml", changed, secret("other", {"api-key": b64(KEY)}))
    second = manifests.read(folder, environ={}, previous=first)
    assert second.snapshot.providers["a"].spec.priority == 100, "the last good version"
    assert second.snapshot.providers["b"].spec.priority == 7
    text = _text(second)
    assert "a.yaml: LLMProvider a: spec.priority: " in text
    assert "less than or equal to 1000" in text
    assert "keeping its previous version" in text


def test_the_cel_rules_apply_in_manifests_mode(folder: Path) -> None:
    # A rule only the API server's CEL knew before: timeout must not exceed interval.
    hc = {"interval": "2s", "timeout": "5s"}
    write(folder, "c.yaml", provider("c", creds="creds", healthCheck=hc))
    loaded = manifests.read(folder, environ={})
    assert "c" not in loaded.snapshot.providers
    assert "LLMProvider c: spec.healthCheck: " in _text(loaded)
    assert "timeout must not exceed spec.healthCheck.interval" in _text(loaded)


def test_a_missing_folder_fails_the_whole_reading(tmp_path: Path) -> None:
    with pytest.raises(manifests.ManifestError, match="no such folder"):
        manifests.read(tmp_path / "absent")
    assert manifests.fingerprint(tmp_path / "absent") is None


async def test_a_deleted_folder_marks_the_watch_failing_and_reading_resumes(folder: Path) -> None:
    state = RouterState()
    watch = folder_watch.first_reading(folder, None)
    watch.poll = 0.01
    state.snapshot = watch.loaded.snapshot
    health = supervision.Health("manifests", state.failing)
    task = asyncio.create_task(watch.run(state, health))
    try:
        await _until(lambda: state.synced_at > 0)
        # Gone at once (file by file, the watch could first read an emptied folder, which is
        # a valid reading: no manifests).
        await asyncio.to_thread(folder.rename, folder.with_name("gone"))
        await _until(lambda: "manifests" in state.failing)
        assert "is missing" in state.failing["manifests"]
        assert set(state.snapshot.providers) == {"a", "b"}, "the last good manifests serve on"

        docs = (provider("a", priority=3), secret("creds", {"api-key": b64(KEY)}))
        await asyncio.to_thread(_recreate, folder, docs)
        await _until(lambda: "manifests" not in state.failing)
        await _until(lambda: set(state.snapshot.providers) == {"a"})
        assert state.snapshot.providers["a"].spec.priority == 3
    finally:
        task.cancel()


async def test_the_folder_is_read_off_the_event_loop(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = RouterState()
    watch = folder_watch.first_reading(folder, None)
    watch.poll = 0.01
    readers: list[threading.Thread] = []
    read = manifests.read

    def recorded(*args: Any, **kwargs: Any) -> manifests.Loaded:
        readers.append(threading.current_thread())
        return read(*args, **kwargs)

    monkeypatch.setattr(manifests, "read", recorded)
    task = asyncio.create_task(watch.run(state, supervision.Health("manifests", state.failing)))
    try:
        await _until(lambda: state.synced_at > 0)
        await asyncio.to_thread(write, folder, "c.yaml", provider("c"))
        await _until(lambda: "c" in state.snapshot.providers)
    finally:
        task.cancel()
    assert readers
    assert threading.main_thread() not in readers  # a large folder cannot stall requests


def _mount(secrets: Path, name: str, key: str) -> None:
    """Write ``secrets/name/api-key`` as the kubelet does for a mounted Secret: the key file
    is a link through ``..data``, and a change swaps ``..data`` for a new folder at once."""
    mount = secrets / name
    mount.mkdir(parents=True, exist_ok=True)
    version = mount / f"..{key[-4:]}"
    version.mkdir()
    (version / "api-key").write_text(key)
    (mount / "..data_tmp").symlink_to(version.name)
    (mount / "..data_tmp").rename(mount / "..data")
    if not (mount / "api-key").is_symlink():
        (mount / "api-key").symlink_to("..data/api-key")


async def test_a_rotated_key_in_the_secrets_folder_is_read_again(tmp_path: Path) -> None:
    folder, secrets = tmp_path / "manifests", tmp_path / "secrets"
    folder.mkdir()
    write(folder, "a.yaml", provider("a"))  # its Secret "creds" is a mounted folder
    _mount(secrets, "creds", KEY)
    state = RouterState()
    watch = folder_watch.first_reading(folder, secrets)
    watch.poll = 0.01
    state.snapshot = watch.loaded.snapshot
    assert state.snapshot.providers["a"].api_key == KEY
    task = asyncio.create_task(watch.run(state, supervision.Health("manifests", state.failing)))
    try:
        await _until(lambda: state.synced_at > 0)
        await asyncio.to_thread(_mount, secrets, "creds", NEW_KEY)
        await _until(lambda: state.snapshot.providers["a"].api_key == NEW_KEY)
    finally:
        task.cancel()


def _recreate(folder: Path, docs: tuple[dict[str, Any], ...]) -> None:
    folder.mkdir()
    write(folder, "a.yaml", *docs)


async def _until(check: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_an_object_defined_twice_keeps_its_first_definition_and_names_the_repeat(
    folder: Path,
) -> None:
    write(folder, "c.yaml", provider("a", priority=7), provider("c"), provider("c", priority=9))
    loaded = manifests.read(folder)
    assert loaded.snapshot.providers["a"].spec.priority != 7  # a.yaml's, the first
    assert loaded.snapshot.providers["c"].spec.priority != 9
    said = sorted(str(p) for p in loaded.problems)
    assert len(said) == 2
    assert f"{folder / 'c.yaml'}: LLMProvider a" in said[0]
    assert f"defined again (first in {folder / 'a.yaml'})" in said[0]
    assert f"{folder / 'c.yaml'}: LLMProvider c" in said[1]


KEY_FILE_DAMAGE = {
    "line-break": lambda path: path.write_bytes(b"sk-key\r\nX-Evil: 1"),
    "control-character": lambda path: path.write_bytes(b"sk-\x01key"),
    "too-large": lambda path: path.write_bytes(b"k" * (64 * 1024 * 1024)),
    "directory": lambda path: path.mkdir(),
    "dangling-link": lambda path: path.symlink_to(path.parent / "nowhere"),
    "not-utf8": lambda path: path.write_bytes(b"\xff\xfe"),
}


@pytest.mark.parametrize("damage", KEY_FILE_DAMAGE.values(), ids=KEY_FILE_DAMAGE.keys())
def test_a_bad_key_file_is_a_named_problem_and_never_a_request_without_auth(
    tmp_path: Path, damage: Any
) -> None:
    folder, secrets = tmp_path / "manifests", tmp_path / "secrets"
    folder.mkdir()
    (secrets / "creds").mkdir(parents=True)
    write(folder, "a.yaml", provider("a"))
    path = secrets / "creds" / "api-key"
    damage(path)
    loaded = manifests.read(folder, secrets)
    entry = loaded.snapshot.providers["a"]
    assert not entry.usable, "no requests without auth"
    assert entry.api_key is None
    assert str(path) in _text(loaded)
    assert "takes no requests" in _text(loaded)
    assert "X-Evil" not in _text(loaded)


def test_a_bad_key_file_after_a_good_one_keeps_the_good_one(tmp_path: Path) -> None:
    folder, secrets = tmp_path / "manifests", tmp_path / "secrets"
    folder.mkdir()
    (secrets / "creds").mkdir(parents=True)
    write(folder, "a.yaml", provider("a"))
    (secrets / "creds" / "api-key").write_text(KEY)
    first = manifests.read(folder, secrets)
    (secrets / "creds" / "api-key").write_bytes(b"sk-\nbroken")
    second = manifests.read(folder, secrets, previous=first)
    assert second.snapshot.providers["a"].api_key == KEY
    assert second.snapshot.providers["a"].usable
    assert "keeping the previous key" in _text(second)


@pytest.mark.parametrize(
    "environ",
    [{"SIGNALBOX_SECRET_CREDS_API_KEY": "sk-\r\nkey"}, {}],
    ids=["unsendable", "missing"],
)
def test_a_key_that_cannot_be_sent_or_is_missing_takes_the_provider_out(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder, "a.yaml", provider("a"))
    loaded = manifests.read(folder, None, environ)
    assert not loaded.snapshot.providers["a"].usable
    assert "creds" in _text(loaded)
    assert "\r" not in _text(loaded)


def test_a_refused_object_is_named_without_its_values(folder: Path) -> None:
    write(
        folder,
        "c.yaml",
        provider(
            "c",
            auth={
                "secretRef": {"name": "creds", "key": "api-key"},
                "header": "sk-a key with spaces",
            },
        ),
    )
    loaded = manifests.read(folder)
    assert "spec.auth.header" in _text(loaded)
    assert "sk-a key" not in _text(loaded)
