"""No client-made 500: generated junk thrown at every route and every header the router reads
ends in a 4xx in the client's API shape or in a valid answer, and never in a traceback.

The router runs in manifests mode over real HTTP on loopback, in front of fakes of three
provider APIs (OpenAI, Anthropic, Ollama), so every translation is crossed. Bodies are valid
requests with parts swapped for junk (wrong types, huge numbers, deep nesting, odd text),
or no JSON at all; headers are the control headers, auth, content type and cache control with
junk values, sometimes twice. The seed is printed so that a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from signalbox_fake import FakeProvider, Flavor
from tests.support.router import RouterProcess, policy, provider, running_fakes, running_router

CASES = int(os.environ.get("SIGNALBOX_JUNK_CASES", "600"))
SEED = int(os.environ.get("SIGNALBOX_JUNK_SEED", str(random.SystemRandom().randrange(1 << 30))))
FLAVORS = {"openai": Flavor.OPENAI, "anthropic": Flavor.ANTHROPIC, "ollama": Flavor.OLLAMA}
TYPES = {"openai": "OpenAICompatible", "anthropic": "Anthropic", "ollama": "Ollama"}
CAPABILITIES = [
    "chat",
    "completions",
    "embeddings",
    "streaming",
    "tools",
    "vision",
    "jsonMode",
    "jsonSchema",
]

POSTS = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/responses",
]
GETS = [
    "/v1/models",
    "/v1/usage",
    "/v1/explain",
    "/v1/providers",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/nothing-here",
]
HEADERS = [
    "x-signalbox-priority",
    "x-signalbox-max-attempts",
    "x-signalbox-timeout",
    "x-signalbox-failover",
    "authorization",
    "x-api-key",
    "content-type",
    "cache-control",
    "content-encoding",
    "anthropic-version",
    "x-request-id",
]


WORDS = [
    "",
    "x",
    "assistant",
    "tool",
    "function",
    "json_schema",
    "image_url",
    "\u0000",
    "a\r\nb",
    "💥" * 50,
]
KEYS = ["type", "role", "content", "text", "name", "schema", "json_schema", "function", "x"]


def _base(path: str, model: str) -> dict[str, Any]:
    """A valid request for ``path``, with the optional parts a client may send."""
    if path == "/v1/messages":
        return {
            "model": model,
            "max_tokens": 16,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "stream": False,
        }
    if path == "/v1/responses":
        return {
            "model": model,
            "input": "hi",
            "instructions": "be brief",
            "stream": False,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        }
    if path == "/v1/completions":
        return {"model": model, "prompt": "hi", "max_tokens": 8, "stream": False, "n": 1}
    if path == "/v1/embeddings":
        return {"model": model, "input": ["hi", "there"]}
    return {
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "max_tokens": 8,
        "temperature": 0,
        "stream": False,
        "stream_options": {"include_usage": True},
        "stop": ["\n"],
        "n": 1,
    }


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kinds = [
        "int",
        "huge",
        "neg",
        "float",
        "str",
        "empty",
        "null",
        "bool",
        "list",
        "dict",
        "deep",
        "unicode",
        "digits",
        "nested-list",
    ]
    kind = rng.choice(kinds if depth < 2 else kinds[:8])
    makers: dict[str, Callable[[], Any]] = {
        "int": lambda: rng.randrange(-5, 10),
        "huge": lambda: 10 ** rng.randrange(18, 400),
        "neg": lambda: -(10 ** rng.randrange(1, 30)),
        "float": lambda: rng.choice([0.5, -1e308, 1e-300, 3.0]),
        "str": lambda: rng.choice(WORDS),
        "empty": lambda: rng.choice([[], {}, ""]),
        "null": lambda: None,
        "bool": lambda: rng.choice([True, False]),
        "list": lambda: [_junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))],
        "dict": lambda: {rng.choice(KEYS): _junk(rng, depth + 1) for _ in range(rng.randrange(4))},
        "deep": lambda: json.loads("[" * 60 + "1" + "]" * 60),
        "unicode": lambda: "\ud7ff\ue000\U0010ffff" * rng.randrange(1, 20),
        "digits": lambda: "9" * rng.randrange(100, 5000),
        "nested-list": lambda: [[[_junk(rng, depth + 2)]]],
    }
    return makers[kind]()


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one part swapped for junk (or removed, or a key added)."""
    if isinstance(value, dict) and value and (depth == 0 or rng.random() < 0.7):
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.25:
            out[rng.choice(["extra", "seed", "logprobs", "user", "metadata"])] = _junk(rng)
        elif roll < 0.6 and isinstance(out[key], dict | list):
            out[key] = _mutate(rng, out[key], depth + 1)
        else:
            out[key] = _junk(rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = _mutate(rng, out_list[i], depth + 1) if rng.random() < 0.5 else _junk(rng)
        return out_list
    return _junk(rng)


def _body(rng: random.Random, path: str) -> bytes:
    model = rng.choice([*FLAVORS, "unknown-model"])
    body = _base(path, model)
    for _ in range(rng.randrange(1, 4)):
        body = _mutate(rng, body)
    roll = rng.random()
    if roll < 0.05:
        return rng.choice([b"", b"{", b"null", b"[]", b"\xff\xfe", b'{"model": 1e999}'])
    if roll < 0.1 and isinstance(body, dict):
        body["stream"] = True
    return json.dumps(body, allow_nan=True).encode()


def _headers(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(rng.randrange(0, 4)):
        name = rng.choice(HEADERS)
        value = rng.choice(
            [
                "",
                "0",
                "-1",
                "critical",
                "off",
                "on",
                "1m",
                "1d",
                "9" * 4301,
                "Bearer",
                "Bearer x",
                "text/plain",
                "no-store",
                "gzip",
                "1.5",
                "nan",
                "999999999999999999999s",
            ]
        )
        out.append((name, value))
        if rng.random() < 0.2:
            out.append((name, value))  # given twice
    return out


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    fakes = {name: FakeProvider(name, flavor, [name]) for name, flavor in FLAVORS.items()}
    with running_fakes(*fakes.values()):
        docs: list[dict[str, Any]] = []
        for name, fake in fakes.items():
            models = [{"name": name, "capabilities": CAPABILITIES}]
            key = ("keys", "any") if name == "anthropic" else None
            docs.append(provider(name, TYPES[name], fake.base_url, secret=key, models=models))
            docs.append(policy(name, [name], [name]))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "keys"},
                "stringData": {"any": "sk-any-key-for-the-fakes"},
            }
        )
        folder = tmp_path_factory.mktemp("junk") / "manifests"
        with running_router(folder, docs) as r:
            yield r


def _shaped(path: str, resp: httpx.Response) -> bool:
    """Whether an error answer has its client API's error shape."""
    try:
        body = resp.json()
    except ValueError:
        return False
    if path == "/v1/messages":
        return body.get("type") == "error" and isinstance(body.get("error"), dict)
    return isinstance(body.get("error"), dict) and isinstance(body["error"].get("message"), str)


def test_junk_from_clients_never_makes_a_500_or_a_traceback(router: RouterProcess) -> None:
    print(f"seed {SEED} (SIGNALBOX_JUNK_SEED replays it)")
    rng = random.Random(SEED)
    bad: list[str] = []
    seen: dict[int, int] = {}
    with httpx.Client(base_url=router.url, timeout=10) as client:
        for i in range(CASES):
            if rng.random() < 0.8:
                path, method, content = rng.choice(POSTS), "POST", None
                content = _body(rng, path)
            else:
                path, method, content = rng.choice(GETS), rng.choice(["GET", "GET", "POST"]), None
                if path == "/v1/explain":
                    path += rng.choice(["?model=openai", "?model=", "?capabilities=%ff", "?x"])
            headers = [("content-type", "application/json"), *_headers(rng)]
            resp = client.request(method, path, content=content, headers=headers)
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            ok = resp.status_code < 500 and (resp.status_code < 400 or _shaped(path, resp))
            if not ok:
                bad.append(f"#{i} {method} {path} -> {resp.status_code}: {resp.text[:200]}")
    log = router.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
    assert not bad, f"seed {SEED}, statuses {seen}:\n" + "\n".join(bad[:20])
    assert seen.get(200, 0) > CASES // 20, f"too little got through to mean much: {seen}"
