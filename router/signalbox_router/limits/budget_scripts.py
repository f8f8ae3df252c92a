"""The Lua that keeps shared budgets in Redis, run atomically on the server's clock.

One hash per budget (a provider's requests or tokens). ``LEASE`` takes capacity for one
replica and ``GIVE_BACK`` returns what a lease left unspent; both read ``TIME`` in Redis, so the
replicas' clocks never matter. Per algorithm, matching :mod:`limits`:

- TokenBucket: ``level`` and ``last``; refills at ``limit / 60`` per second up to ``capacity``.
- SlidingWindow: one field per half-second slot; a lease is recorded in the slot of the moment
  it stops being spendable (now + life), and counts until a whole window after that slot ends,
  so a batch spent late still counts a full minute from its last possible use.
- FixedWindow: ``minute`` and ``used``; a lease ends with the minute it was taken in.

ARGV of LEASE: algorithm (tb, sw, fw), limit, capacity, want, need, life, charge. It records
``charge`` as spent now, then grants ``want`` or as much as is there if that is at least
``need``. It answers strings (Lua numbers would be cut to integers): granted, stamp, life in
seconds, and, when nothing was granted, seconds until ``need`` may fit.
ARGV of GIVE_BACK: algorithm, limit, capacity, stamp, amount. HEARTBEAT counts live replicas.
"""

from __future__ import annotations

_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
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

LEASE = (
    _COMMON
    + """
local want, need, life, charge = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local granted, stamp, retry = 0, '', 0
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
else
  local minute, used = minute_used()
  used = used + charge
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
return {tostring(granted), stamp, tostring(life), tostring(retry)}
"""
)

GIVE_BACK = (
    _COMMON
    + """
local stamp, amount = ARGV[4], tonumber(ARGV[5])
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

HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 2000))
return redis.call('ZCARD', KEYS[1])
"""
