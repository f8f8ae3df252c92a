"""A bound on how deeply a request's JSON nests, checked before anything is acquired.

A body nested a few hundred levels deep parses, but re-encoding it later (orjson refuses more
than 254 levels) fails in the middle of an attempt. No real request nests anywhere near
:data:`MAX_DEPTH`, so deeper ones are refused at the door. Counting the raw opening brackets
(at C speed) rules out almost every body; only one with more brackets than the bound is walked.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64


def too_deep(raw: bytes, parsed: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``parsed`` (decoded from ``raw``) nests objects and arrays deeper than ``limit``."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # each level opens one bracket, so it cannot be deeper
    return depth(parsed, limit) > limit


def depth(value: Any, stop: int) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar is 0); the walk ends past
    ``stop``. Iterative, so no body can exhaust the interpreter's stack."""
    if type(value) is not dict and type(value) is not list:
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, level = pop()
        if level > deepest:
            deepest = level
            if level > stop:
                break
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, level + 1))
    return deepest
