"""The response cache a RoutingPolicy opts into with ``spec.cache``: answers to repeated
deterministic requests, served without asking a provider.

Each router keeps a least-recently-used map per policy (``maxEntries``, ``ttl``; answers over
``maxEntryBytes`` are not kept). With ``--redis-url`` entries are also written to Redis (in the
background) and looked up there on a local miss, so one replica's answer serves them all; a
Redis that is slow (50 ms) or away is a miss, never an error. In Redis too a policy keeps at
most ``maxEntries`` (an index per policy, trimmed by the write, soonest to expire first), and
when Redis runs out of memory the shared budgets drop the cache's entries first
(``make_room``): a cache never starves the rate limits. Every answer of a caching policy
says ``x-signalbox-cache: hit``, ``miss`` or ``bypass`` (a request that is not deterministic,
or whose ``Cache-Control`` says ``no-cache``/``no-store``). A streamed answer is collected as it
is sent (:mod:`stream_capture`) and kept once it ended whole. What hits saved (tokens, and cost
at the providers' declared prices) is added to ``/v1/usage``. Keys and rules: :mod:`cache_keys`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import prometheus_client as prom

from signalbox_api.policy import ResponseCache as CacheSpec
from signalbox_api.primitives import parse_duration, parse_money
from signalbox_providers.translate.openai_format import TokenUsage, usage_body
from signalbox_router.asgi import replies, request_reading
from signalbox_router.asgi.sending import Scope
from signalbox_router.cache import keying, stored, stream_capture
from signalbox_router.routing.selection import Route
from signalbox_router.routing.snapshot import Snapshot

log = logging.getLogger(__name__)
HEADER = b"x-signalbox-cache"
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Lookup:
    policy: str
    key: str
    verdict: str  # "hit" (once found), "miss" or "bypass"
    store: bool
    spec: CacheSpec
    tenant: str | None = None  # whose client key asked, when clients authenticate


@dataclass
class Savings:
    """What answers from the cache did not cost: hits, tokens, and money per currency."""

    hits: int = 0
    prompt: int = 0
    completion: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)

    def add(self, prompt: int, completion: int, spent: Decimal | None, currency: str) -> None:
        self.hits += 1
        self.prompt += prompt
        self.completion += completion
        if spent is not None:
            self.cost[currency] = self.cost.get(currency, Decimal(0)) + spent

    def as_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "saved_tokens": self.prompt + self.completion,
            "saved_prompt_tokens": self.prompt,
            "saved_completion_tokens": self.completion,
            "saved_cost": {c: str(v.normalize()) for c, v in sorted(self.cost.items())},
        }


class ResponseCache:
    """All policies' caches in one router; Redis (a ``redis.asyncio.Redis``) when given."""

    def __init__(
        self,
        registry: prom.CollectorRegistry,
        client: Any = None,
        *,
        prefix: str = "signalbox",
        timeout: float = 0.05,
        reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client, self.prefix, self.timeout = client, prefix, timeout
        self.reachable = reachable  # False while Redis is known to be away: not even tried
        self._seen: Snapshot | None = None
        self._specs: dict[str, CacheSpec] = {}
        self._local: dict[str, stored.Entries] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self.saved = Savings()
        self._saved_by: dict[str | None, Savings] = {}  # per tenant
        self.lookups = prom.Counter(
            "signalbox_router_cache_lookups_total",
            "Response cache lookups by policy and result (hit, miss, bypass).",
            ["policy", "result"],
            registry=registry,
        )
        self.saved_tokens_total = prom.Counter(
            "signalbox_router_cache_saved_tokens_total",
            "Tokens (in plus out) that answers from the cache did not cost, by policy.",
            ["policy"],
            registry=registry,
        )
        self.evictions = prom.Counter(
            "signalbox_router_cache_evictions_total",
            "Entries evicted from a policy's local cache to make room.",
            ["policy"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        """Whether any policy of the last snapshot seen caches."""
        return bool(self._specs)

    def lookup(
        self,
        scope: Scope,
        body: dict[str, Any],
        route: Route,
        snapshot: Snapshot,
        tenant: str | None = None,
    ) -> Lookup | None:
        """None when the request's policy has no cache (nothing is added to its answer);
        ``tenant``: whose client key asked (the edge's, when clients authenticate)."""
        if snapshot is not self._seen:
            self._follow(snapshot)
        spec = self._specs.get(route.policy or "") if self._specs else None
        if spec is None or route.policy is None:
            return None
        control = request_reading.header(scope, b"cache-control").lower()
        no_store, deterministic = b"no-store" in control, keying.deterministic(body)
        verdict = "miss" if deterministic and b"no-cache" not in control and not no_store else ""
        if not verdict:  # not looked up; a fresh deterministic answer is still kept
            self.lookups.labels(route.policy, "bypass").inc()
        store = deterministic and not no_store
        # Tenants apart: the key the client authenticated with, whichever header carried it.
        key = keying.key(request_reading.client_key(scope), body) if store or verdict else ""
        return Lookup(route.policy, key, verdict or "bypass", store, spec, tenant)

    def _follow(self, snapshot: Snapshot) -> None:
        self._seen = snapshot
        self._specs = {p.name: p.spec.cache for p in snapshot.policies if p.spec.cache}
        self._local = {
            name: local
            for name, local in self._local.items()
            if self._specs.get(name) == local.spec
        }

    async def answer(
        self, look: Lookup, body: dict[str, Any], route: Route
    ) -> replies.Reply | replies.StreamReply | None:
        """The kept answer as this request wants it (plain or streamed), or None."""
        if look.verdict == "bypass":
            return None
        entry = await self._find(look)
        if entry is None:
            self.lookups.labels(look.policy, "miss").inc()
            return None
        self.lookups.labels(look.policy, "hit").inc()
        parsed = keying.keepable(200, entry.answer)
        if parsed is None:
            return None
        self._count_savings(look, entry, parsed, route)
        headers = [*replies.signalbox_headers(entry.provider, entry.model, 0), (HEADER, b"hit")]
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _chunks(keying.replay(parsed, usage))
            return replies.StreamReply(chunks, [*replies.STREAM_HEADERS, *headers])
        return replies.Reply(200, entry.answer, [replies.JSON_TYPE, *headers])

    async def _find(self, look: Lookup) -> stored.Entry | None:
        local = self._policy(look)
        now = time.time()
        entry = local.get(look.key, now)
        if entry is not None or self.client is None or not self.reachable():
            return entry
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self.client.get(self._redis_key(look.key))
            found = stored.Entry.decode(raw) if raw else None
        except Exception as exc:  # a slow, gone or confused Redis is a miss
            log.debug("response cache: Redis lookup failed (%s)", type(exc).__name__)
            return None
        if found is None or found.expires <= now:
            return None
        self.evictions.labels(look.policy).inc(local.put(look.key, found))
        return found

    def keep(
        self, look: Lookup, reply: replies.Reply | replies.StreamReply
    ) -> replies.Reply | replies.StreamReply:
        """Mark the provider's answer with the lookup's verdict; keep it when it may be (a
        stream once it has ended whole)."""
        reply.headers.append((HEADER, look.verdict.encode()))
        if not look.store or reply.status != 200:
            return reply
        names = dict(reply.headers)
        who = (
            names.get(b"x-signalbox-provider", b"").decode(),
            names.get(b"x-signalbox-model", b"").decode(),
        )
        if isinstance(reply, replies.StreamReply):
            reply.chunks = self._captured(look, reply.chunks, reply.usage, who)
        else:
            self._store(look, reply.body, who)
        return reply

    async def _captured(
        self,
        look: Lookup,
        chunks: AsyncIterator[bytes],
        usage: Callable[[], tuple[int, int] | None],
        who: tuple[str, str],
    ) -> AsyncIterator[bytes]:
        capture = stream_capture.Capture(4 * look.spec.max_entry_bytes)  # SSE framing included
        try:
            async for chunk in chunks:
                capture.feed(chunk)
                yield chunk
            counted = usage()
            if capture.usage is None and counted is not None:  # the client did not ask for it
                capture.usage = usage_body(TokenUsage(*counted))
            answer = capture.answer()
            if answer is not None:
                self._store(look, answer, who)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    def _store(self, look: Lookup, answer: bytes, who: tuple[str, str]) -> None:
        if len(answer) > look.spec.max_entry_bytes or keying.keepable(200, answer) is None:
            return
        ttl = parse_duration(look.spec.ttl)
        entry = stored.Entry(who[0], who[1], answer, time.time() + ttl)
        self.evictions.labels(look.policy).inc(self._policy(look).put(look.key, entry))
        if self.client is not None and self.reachable():
            task = asyncio.create_task(self._write(look, entry, ttl))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, look: Lookup, entry: stored.Entry, ttl: float) -> None:
        keys = (self._redis_key(look.key), self._index_key(look.policy))
        limit = str(look.spec.max_entries)
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self.client.eval(_STORE, 2, *keys, entry.encode(), int(ttl * 1000), limit)
        except Exception as exc:  # the local copy still serves this replica
            log.debug("response cache: Redis write failed (%s)", type(exc).__name__)

    async def make_room(self) -> None:
        """Drop every entry this router's policies keep in Redis (Redis is out of memory, and
        the shared budgets come first). Deletions are allowed however full Redis is."""
        for policy in list(self._local):
            index = self._index_key(policy)
            async with asyncio.timeout(self.timeout * 4):
                keys = await self.client.zrange(index, 0, -1)
                await self.client.delete(index, *keys)
            log.warning("response cache: Redis is out of memory; dropped %d entries", len(keys))

    def _index_key(self, policy: str) -> str:
        return f"{self.prefix}:cache-index:{policy}"

    def _policy(self, look: Lookup) -> stored.Entries:
        local = self._local.get(look.policy)
        if local is None or local.spec != look.spec:
            local = self._local[look.policy] = stored.Entries(look.spec)
        return local

    def _redis_key(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    def _count_savings(
        self, look: Lookup, entry: stored.Entry, parsed: dict[str, Any], route: Route
    ) -> None:
        prompt, completion = keying.usage(parsed)
        self.saved_tokens_total.labels(look.policy).inc(prompt + completion)
        price = next((c.price for c in route.ordered if c.provider == entry.provider), None)
        spent, currency = None, ""
        if price is not None:
            spent = (
                parse_money(price.input_per_m_tok) * prompt
                + parse_money(price.output_per_m_tok) * completion
            ) / _MILLION
            currency = price.currency
        self.saved.add(prompt, completion, spent, currency)
        self._saved_by.setdefault(look.tenant, Savings()).add(prompt, completion, spent, currency)

    @property
    def hits(self) -> int:
        return self.saved.hits

    def savings(self, tenant: str | None = None) -> dict[str, Any]:
        """For ``/v1/usage``: hits, and the tokens and cost they saved (everyone's, or one
        tenant's)."""
        if tenant is None:
            return self.saved.as_json()
        return self._saved_by.get(tenant, Savings()).as_json()


# One entry written, and the policy's index trimmed to its maxEntries (soonest to expire go
# first; expired ones are gone already). KEYS: the entry, the index; ARGV: the entry's bytes,
# its ttl in ms, maxEntries. On Redis's clock.
_STORE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, most = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local over = redis.call('ZCARD', KEYS[2]) - most
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
  redis.call('DEL', unpack(gone))
end
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""


async def _chunks(events: Any) -> AsyncIterator[bytes]:
    for event in events:
        yield event
