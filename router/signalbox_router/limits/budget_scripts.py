"""The Lua that keeps shared budgets in Redis, run atomically on the server's clock.

One hash per budget (a provider's requests or tokens). ``LEASE`` takes capacity for one
replica and ``GIVE_BACK`` returns what a lease left unspent; both read ``TIME`` in Redis, so the
replicas' clocks never matter.

One more hash, the generation (``id`` and ``settle``), tells a Redis that lost its data (flushed,
restarted empty, evicted) from one that kept it: every script reads it, and the first to find it
missing makes a new one. A replica that sees a generation other than the one it knew charges what it
spent in the last minute; for ``SETTLE`` seconds after a new generation that replaced a known one
(not on a fleet's first start) nothing is granted, only charges are taken, so every live replica
(each beats a heartbeat twice a second) has charged its spending before anyone leases again. Per
algorithm, matching :mod:`limits`:

- TokenBucket: ``level`` and ``last``; refills at ``limit / 60`` per second up to ``capacity``.
- SlidingWindow: one field per half-second slot; a lease is recorded in the slot of the moment
  it stops being spendable (now + life), and counts until a whole window after that slot ends,
  so a batch spent late still counts a full minute from its last possible use.
- FixedWindow: ``minute`` and ``used``; a lease ends with the minute it was taken in.

KEYS of LEASE and GIVE_BACK: the budget, the generation. ARGV of LEASE: algorithm (tb, sw, fw),
limit, capacity, want, need, life, charge, generation known. It records ``charge`` as spent now,
then grants ``want`` or as much as is there if that is at least ``need`` (nothing while settling, or
to a replica that knew another generation and has not yet charged for it). It answers strings (Lua
numbers would be cut to integers): granted, stamp, life in seconds, seconds until ``need`` may fit
when nothing was granted, what the whole fleet has used of the budget (its window's total, or a
bucket's draw), and the generation. ARGV of GIVE_BACK: algorithm, limit, capacity, stamp, amount,
generation; a return to another generation is dropped. HEARTBEAT (KEYS: the replicas, the
generation; ARGV: replica id, ttl, generation known) counts live replicas and answers the count and
the generation.
"""

from __future__ import annotations

SETTLE = 1.5  # seconds after a new generation with no grants (three heartbeats)

_GENERATION = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function generation(gkey, known)
  local v = redis.call('HMGET', gkey, 'id', 'settle')
  if v[1] then return v[1], tonumber(v[2]) or 0 end
  local id = string.format('%d-%06d', t[1], t[2])
  local settle = 0  -- a fleet's first start: nothing was spent, nothing to settle
  if known ~= '' then settle = now + SETTLE_SECONDS end
  redis.call('HSET', gkey, 'id', id, 'settle', tostring(settle))
  return id, settle
end
""".replace("SETTLE_SECONDS", repr(SETTLE))

_COMMON = (
    _GENERATION
    + """
local WINDOW, SLOT = 60, 0.5
local key, alg = KEYS[1], ARGV[1]
local limit, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local function bucket()
  local v = redis.call('HMGET', key, 'level', 'last')
  local level, last = tonumber(v[1]) or cap, tonumber(v[2]) or now
  if now > last then
    level = math.min(cap, level + (now - last) * limit / WINDOW)
    last = now
  end
  return level, last
end
local function save_bucket(level, last)
  redis.call('HSET', key, 'level', tostring(level), 'last', tostring(last))
  redis.call('PEXPIRE', key, math.ceil((cap * WINDOW / limit + WINDOW) * 1000))
end
local function slots()
  local total, entries = 0, {}
  local raw = redis.call('HGETALL', key)
  for i = 1, #raw, 2 do
    local s, a = tonumber(raw[i]), tonumber(raw[i + 1])
    if (s + 1) * SLOT + WINDOW <= now then
      redis.call('HDEL', key, raw[i])
    else
      total = total + a
      entries[#entries + 1] = {s, a}
    end
  end
  return total, entries
end
local function minute_used()
  local v = redis.call('HMGET', key, 'minute', 'used')
  local minute = math.floor(now / WINDOW)
  if tonumber(v[1]) == minute then return minute, tonumber(v[2]) end
  return minute, 0
end
"""
)

LEASE = (
    _COMMON
    + """
local want, need, life, charge = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local gen, settle = generation(KEYS[2], ARGV[8])
local held = want > 0 and ((gen ~= ARGV[8] and ARGV[8] ~= '') or now < settle)
if held then
  want = 0  -- a new generation: charges only, until every replica has charged its spending
end
local granted, stamp, retry, used = 0, '', 0, 0
if alg == 'tb' then
  local level, last = bucket()
  level = level - charge
  local avail = math.floor(level + 1e-9)
  if want > 0 and avail >= need and avail > 0 then
    granted = math.min(want, avail)
    level = level - granted
  elseif want > 0 then
    retry = (need - level) * WINDOW / limit
  end
  save_bucket(level, last)
  used = cap - level
elseif alg == 'sw' then
  local total, entries = slots()
  if charge > 0 then
    redis.call('HINCRBYFLOAT', key, string.format('%d', math.floor(now / SLOT)), charge)
    total = total + charge
  end
  local avail = math.floor(limit - total + 1e-9)
  if want > 0 and avail >= need and avail > 0 then
    granted = math.min(want, avail)
    stamp = string.format('%d', math.floor((now + life) / SLOT))
    redis.call('HINCRBYFLOAT', key, stamp, granted)
    total = total + granted
  elseif want > 0 then
    table.sort(entries, function(a, b) return a[1] < b[1] end)
    local free = limit - total
    retry = WINDOW
    for _, e in ipairs(entries) do
      free = free + e[2]
      if free >= need then
        retry = math.max(0, (e[1] + 1) * SLOT + WINDOW - now)
        break
      end
    end
  end
  redis.call('PEXPIRE', key, math.ceil((WINDOW + life + 2 * SLOT) * 1000))
  used = total
else
  local minute, before = minute_used()
  used = before + charge
  local avail = math.floor(limit - used + 1e-9)
  if want > 0 and avail >= need and avail > 0 then
    granted = math.min(want, avail)
    used = used + granted
    stamp = string.format('%d', minute)
    life = math.min(life, (minute + 1) * WINDOW - now)
  elseif want > 0 then
    retry = (minute + 1) * WINDOW - now
  end
  redis.call('HSET', key, 'minute', string.format('%d', minute), 'used', tostring(used))
  redis.call('PEXPIRE', key, 2 * WINDOW * 1000)
end
if held then retry = math.max(settle - now, 0) end
return {tostring(granted), stamp, tostring(life), tostring(retry), tostring(used), gen}
"""
)

GIVE_BACK = (
    _COMMON
    + """
local stamp, amount = ARGV[4], tonumber(ARGV[5])
if generation(KEYS[2], ARGV[6]) ~= ARGV[6] then
  return 0  -- a lease of a generation that is gone: nothing to give back to
end
if alg == 'tb' then
  local level, last = bucket()
  save_bucket(math.min(cap, level + amount), last)
elseif alg == 'sw' then
  slots()
  local have = tonumber(redis.call('HGET', key, stamp) or '0') or 0
  if have - amount > 1e-9 then
    redis.call('HSET', key, stamp, tostring(have - amount))
  else
    redis.call('HDEL', key, stamp)
  end
else
  local minute, used = minute_used()
  if string.format('%d', minute) == stamp then
    redis.call('HSET', key, 'minute', stamp, 'used', tostring(math.max(0, used - amount)))
  end
end
return 1
"""
)

HEARTBEAT = (
    _GENERATION
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 2000))
local gen = generation(KEYS[2], ARGV[3])
return {redis.call('ZCARD', KEYS[1]), gen}
"""
)
