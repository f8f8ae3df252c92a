"""Kubernetes mode's snapshot building judges each object on its own (no cluster needed: the
Store holds the objects as the watch would)."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from signalbox_router.sources import cluster_snapshot
from signalbox_router.sources.cluster_snapshot import Store

KEY = "sk-good-key-1234"


def _provider(name: str, secret: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "type": "OpenAI",
            "endpoint": {"url": f"https://{name}.example/v1"},
            "auth": {"secretRef": {"name": secret, "key": "api-key"}},
            **spec,
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }


def _store(good: str, bad: str) -> Store:
    store = Store()
    store.objects("llmproviders").update(
        {"a": _provider("a", "creds-a"), "b": _provider("b", "creds-b")}
    )
    store.objects("secrets").update(
        {
            "creds-a": {"metadata": {"name": "creds-a"}, "data": {"api-key": good}},
            "creds-b": {"metadata": {"name": "creds-b"}, "data": {"api-key": bad}},
        }
    )
    return store


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_a_non_utf8_secret_keeps_the_previous_key_and_spares_the_others() -> None:
    first = cluster_snapshot.build(_store(b64(KEY.encode()), b64(KEY.encode())), "ns")
    assert first.problems == ()
    bad = b64(b"\xff\xfekey")
    second = cluster_snapshot.build(_store(b64(b"sk-new"), bad), "ns", first.snapshot)
    assert second.snapshot.providers["a"].api_key == "sk-new"
    assert second.snapshot.providers["b"].api_key == KEY, "the last good key"
    assert second.snapshot.providers["b"].usable
    (problem,) = second.problems
    assert "Secret creds-b (for LLMProvider b): data.api-key is not UTF-8 text" in problem
    assert "keeping the previous key" in problem
    assert bad not in problem
    assert KEY not in problem


def test_a_bad_secret_with_no_previous_key_takes_the_provider_out() -> None:
    built = cluster_snapshot.build(_store(b64(KEY.encode()), "%%%"), "ns")
    entry = built.snapshot.providers["b"]
    assert not entry.usable
    assert entry.reason == "InvalidSecret"
    assert built.snapshot.providers["a"].usable
    assert "data.api-key is not valid base64; no traffic until it is fixed" in built.problems[0]


def test_an_invalid_provider_keeps_its_previous_version() -> None:
    store = _store(b64(KEY.encode()), b64(KEY.encode()))
    first = cluster_snapshot.build(store, "ns")
    store.objects("llmproviders")["a"] = _provider("a", "creds-a", priority="first")
    second = cluster_snapshot.build(store, "ns", first.snapshot)
    assert second.snapshot.providers["a"] == first.snapshot.providers["a"]
    assert second.problems[0].startswith("LLMProvider a: spec.priority: ")
    assert "keeping its previous version" in second.problems[0]
    store.objects("llmproviders")["c"] = _provider("c", "creds-a", priority="first")
    third = cluster_snapshot.build(store, "ns", second.snapshot)
    assert "c" not in third.snapshot.providers
    assert any(p.startswith("LLMProvider c: ") and p.endswith("left out") for p in third.problems)


def test_a_refused_list_is_a_broken_watch_but_an_outage_is_not() -> None:
    import kubernetes
    import urllib3

    from signalbox_router.sources import watching

    assert watching._refused(kubernetes.client.ApiException(status=403, reason="Forbidden"))
    assert watching._refused(kubernetes.client.ApiException(status=404, reason="Not Found"))
    assert not watching._refused(kubernetes.client.ApiException(status=500, reason="Oops"))
    assert not watching._refused(urllib3.exceptions.MaxRetryError(None, "/", None))


def test_discovered_capabilities_route_where_the_spec_declares_none() -> None:
    store = _store(b64(KEY.encode()), b64(KEY.encode()))
    a = _provider("a", "creds-a", models=[{"name": "m"}, {"name": "n", "contextWindow": 100}])
    a["status"]["models"] = [
        {"name": "m", "capabilities": ["chat", "tools"], "contextWindow": 8192},
        {"name": "n", "capabilities": ["embeddings"], "contextWindow": 4096},
    ]
    store.objects("llmproviders")["a"] = a
    entry = cluster_snapshot.build(store, "ns").snapshot.providers["a"]
    m, n = entry.spec.model("m"), entry.spec.model("n")
    assert m is not None
    assert n is not None
    assert (m.capabilities, m.context_window) == (["chat", "tools"], 8192)
    assert (n.capabilities, n.context_window) == (["embeddings"], 100)  # the spec wins


KINDS = ("llmproviders", "routingpolicies", "secrets", "services", "endpointslices")


def test_nothing_is_built_until_every_kind_is_listed_or_refused() -> None:
    # Providers listed before their Secrets would go out without a key: no view until then.
    store = Store()
    store.listed("llmproviders", {"a": _provider("a", "creds-a")}, 1.0)
    for kind in KINDS[1:-1]:
        store.listed(kind, {}, 2.0)
        assert store.view(KINDS) is None
    store.refuse("endpointslices", "listing endpointslices is refused (403)")
    view = store.view(KINDS)
    assert view is not None
    assert view.refused == {"endpointslices": "listing endpointslices is refused (403)"}
    assert list(view.kinds["llmproviders"]) == ["a"]
    assert view.synced_at == 2.0


def test_a_view_is_a_copy_that_watch_events_leave_alone() -> None:
    store = Store()
    for kind in KINDS:
        store.listed(kind, {}, 1.0)
    store.seen("llmproviders", "ADDED", "a", _provider("a", "creds-a"), 2.0)
    view = store.view(KINDS)
    assert view is not None
    store.seen("llmproviders", "DELETED", "a", {}, 3.0)
    store.seen("llmproviders", "ADDED", "b", _provider("b", "creds-b"), 3.0)
    assert list(view.kinds["llmproviders"]) == ["a"]
    assert list(store.kinds["llmproviders"]) == ["b"]


def test_builds_from_views_survive_a_watch_thread_churning_the_store() -> None:
    # The watch threads change the store while the event loop builds: with builds reading the
    # live dicts this raised "dictionary changed size during iteration" within a second.
    store = _store(b64(KEY.encode()), b64(KEY.encode()))
    for kind in KINDS[1:]:
        store.listed(kind, dict(store.objects(kind)), 1.0)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            store.seen("llmproviders", "ADDED", f"x{i}", _provider(f"x{i}", "creds-a"), 2.0)
            store.seen("llmproviders", "DELETED", f"x{i - 3}", {}, 2.0)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        builds = 0
        while time.monotonic() < deadline:
            view = store.view(KINDS)
            assert view is not None
            assert {"a", "b"} <= set(cluster_snapshot.build(view, "ns").snapshot.providers)
            builds += 1
    finally:
        stop.set()
        thread.join()
    assert builds > 10


def test_a_service_in_another_namespace_is_reached_by_its_cluster_name() -> None:
    # The operator resolves and judges a Service in any namespace; the router watches its own
    # only, so it goes through the Service's name rather than drop a provider that is Ready.
    store = Store()
    service = {"name": "vllm", "namespace": "models", "port": 8000, "path": "/v1"}
    store.objects("llmproviders")["gpu"] = _provider(
        "gpu", "creds-a", type="VLLM", endpoint={"service": service}, auth=None
    )
    built = cluster_snapshot.build(store, "team-a")
    entry = built.snapshot.providers["gpu"]
    assert entry.endpoints == ("http://vllm.models.svc:8000/v1",)
    assert entry.usable
    assert built.problems == ()
