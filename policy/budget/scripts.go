package budget

// The Redis ledger's Lua scripts. Every script takes the holds index as
// KEYS[1] and the tombstones of expired holds as KEYS[2] (where it needs
// them); the reserve and settle scripts then the tombstones of ended
// reservations, and one key per limit (two for a rolling token window: its
// log and its sum); the read and reset scripts two keys per limit. All keys
// share one hash tag.
//
// Storage, per limit:
//
//   - counter (calendar windows, kind c): a hash with fields s (settled
//     amount; admitted requests) and h (held by reservations in flight);
//   - session counter (kind e): the same, and field e, the instant (ms) the
//     session expires unless used again; a session past it counts as new;
//   - rolling token window (kind r): a sorted set of "id|amount" scored by
//     the reserve instant in milliseconds (first key), and the sum of the
//     amounts (second key);
//   - rolling request window (kind q): a list of the admission instants
//     (ms) in the window, newest first; expired ones are popped from the
//     tail, so its length is the count. An instant is never older than the
//     list's newest (a replica whose clock lags stamps the newest), so the
//     list stays sorted;
//   - concurrency: a sorted set of reservation ids scored by lease expiry;
//     only leases not yet expired count, and expired ones are swept now and
//     then.
//
// A settle or cancel that finds no hold of its reservation, live or expired,
// leaves the reservation's id in the ended set (scored by when it may be
// forgotten): the reserve it ends may still be on its way, sent on another
// connection and delayed (a reserve that timed out for its caller but sits
// in a paused Redis's input), and a reserve that finds its id there commits
// nothing. A settle that finds its hold leaves no tombstone, so the set
// stays empty unless Redis was in trouble.
//
// The holds index scores each reservation's member by its lease expiry. The
// member is the reservation id followed by one "\n<counter key>\t<amount>"
// per amount it holds, so that an expired hold can be given back without
// knowing its request. The keys in members are not declared in KEYS; they
// carry the same hash tag, so in Redis Cluster they are in the script's slot.
//
// Every instant is the caller's clock, passed in ARGV, never Redis's. Key
// expiries (PEXPIRE, relative) only collect garbage: they are long enough
// that no key expires while its window or lease can still matter, so a clock
// difference between Tollgate and Redis changes nothing.
//
// Money can exceed 2^53 pico-USD (about 9,000 USD), beyond which Lua's
// doubles are not exact. Counters are therefore changed only with HINCRBY
// (exact int64 arithmetic in Redis) and returned to Go as strings, which Go
// adds exactly. A check compares in doubles, whose error on these sums is
// far below 4096 pico-USD; only when the sum is within 4096 of the limit is
// it redone exactly, on numbers split as hi * 1e9 + lo.
const luaCommon = `
local B = 1000000000
-- How long a reservation whose lease expired is remembered (a day), so that
-- its late settle adds the actual cost without giving the hold back twice,
-- and a repeated settle is told apart from it.
local TOMBSTONE_MS = 86400000

-- split parses a non-negative decimal integer string into hi, lo.
local function split(s)
  local n = #s
  if n <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
end

-- exceeds reports whether s + h + need > max, exactly. s and h are decimal
-- strings (a counter's fields) or numbers below 2^53 (counts); need and max
-- are decimal strings.
local function exceeds(s, h, need, max)
  local d = tonumber(s) + tonumber(h) + tonumber(need) - tonumber(max)
  if d > 4096 then return true elseif d < -4096 then return false end
  if type(s) == 'number' then return d > 0 end
  local hi, lo = 0, 0
  for _, v in ipairs({s, h, need}) do
    local a, b = split(v)
    hi, lo = hi + a, lo + b
  end
  local c = math.floor(lo / B)
  hi, lo = hi + c, lo - c * B
  local mh, ml = split(max)
  return hi > mh or (hi == mh and lo > ml)
end

-- amountOf returns the amount of a rolling log member "id|amount".
local function amountOf(m)
  return tonumber(string.match(m, '|(%d+)$')) or 0
end

-- purge gives back the amounts of holds whose lease expired by now (a
-- decimal string, as are all instants handed to Redis: a Lua number would
-- be formatted for each call) and leaves a tombstone for each, so that a
-- late settle adds its actual cost only.
local function purge(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', '0', '64')
  if #gone == 0 then return end
  for _, m in ipairs(gone) do
    for k, amt in string.gmatch(m, '\n([^\t\n]+)\t(%d+)') do
      if amt ~= '0' and redis.call('EXISTS', k) == 1 then
        redis.call('HINCRBY', k, 'h', '-' .. amt)
      end
    end
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[2], now, m)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(now) - TOMBSTONE_MS)
end

-- age drops the entries of rolling log k (sum in ks) stamped at or before
-- cutoff, and returns the sum left.
local function age(k, ks, cutoff)
  local old = redis.call('ZRANGEBYSCORE', k, '-inf', cutoff)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do freed = freed + amountOf(m) end
    redis.call('ZREMRANGEBYSCORE', k, '-inf', cutoff)
    redis.call('DECRBY', ks, freed)
  end
  return tonumber(redis.call('GET', ks) or '0')
end

-- ageList pops the entries of rolling request list k stamped at or before
-- cutoff.
local function ageList(k, cutoff)
  while true do
    local last = redis.call('LINDEX', k, '-1')
    if not last or tonumber(last) > cutoff then return end
    redis.call('RPOP', k)
  end
end

-- usage returns what a limit has used as s (settled) and h (held): decimal
-- strings for a calendar counter (kind c) or a session counter (e), a
-- number and 0 for a rolling token log (r), a rolling request log (q) or a
-- lease set (l). Then t, the expiry (ms) of a session or -1; whether the
-- session has expired (its settled amount no longer counts); and whether a
-- counter does not exist yet.
local function usage(kind, k1, k2, now, winMS, nowS)
  if kind == 'c' or kind == 'e' then
    local v = redis.call('HMGET', k1, 's', 'h', 'e')
    local s, h, t, stale = v[1] or '0', v[2] or '0', -1, false
    if kind == 'e' and v[3] then
      t = tonumber(v[3])
      if t <= now then s, stale = '0', true end
    end
    return s, h, t, stale, not v[1] and not v[2]
  elseif kind == 'r' then
    return age(k1, k2, now - winMS), 0, -1, false, false
  elseif kind == 'q' then
    ageList(k1, now - winMS)
    return redis.call('LLEN', k1), 0, -1, false, false
  end
  -- Leases past their expiry do not count; they are removed now and then
  -- (luaReserve), or with their hold (purge).
  return redis.call('ZCOUNT', k1, '(' .. nowS, '+inf'), 0, -1, false, false
end
`

// luaReserve runs the settles and cancels given first (as luaSettle: those
// waiting in a batch, or a Replace's cancel), then checks every limit of a
// request and, if all admit it, counts it in all of them.
//
// KEYS: the holds index, the expired holds, the ended set, the settles' keys
// (luaSettle), then one key per limit (two for a rolling token window).
//
// ARGV: m and the ended set's TTL, then the settles' arguments (as
// luaSettle), then: now (ms), hold member, reservation id, lease expiry
// (ms), n; then n times: kind (c, e, r, q, l), mode (h: held until settled;
// s: final, for request counts), max, need, key TTL (ms), and p: the window
// length (ms) of a rolling window, the new expiry (ms) of a session, 1 for a
// lease set whose expired leases are to be swept, else 0.
//
// Reply: the m settles' outcomes (luaSettle), then the reserve's: {1, s, h,
// ...}: what each limit used before the request (the caller adds its need);
// {0, i, s, h, t} when limit i denies, where t is, for a rolling window, the
// instant (ms) the request would fit, for a session its expiry, else -1; {2}
// when the reservation was already made (a retried call); {3} when the
// reservation was settled or cancelled before this call arrived (it timed
// out for its caller, who cancelled it), so nothing was counted.
const luaReserve = luaCommon + luaSettleFn + luaFits + `
local function reserve(ko, ao)
  local now = tonumber(ARGV[ao + 1])
  local member, id, leaseExp, n = ARGV[ao + 2], ARGV[ao + 3], ARGV[ao + 4], tonumber(ARGV[ao + 5])
  local nowS = ARGV[ao + 1]
  purge(nowS)
  -- A reservation ended before it was made: its caller gave up on this call
  -- and cancelled it. Commit nothing.
  if redis.call('ZSCORE', KEYS[3], id) then return {3} end
  -- The hold goes in first: if it is there already, this is a retry of a call
  -- whose reply was lost. A denial takes it out again.
  if redis.call('ZADD', KEYS[1], 'NX', leaseExp, member) == 0 then return {2} end

  local out, stale, fresh, pushed = {1}, {}, {}, {}
  local k = ko
  for i = 1, n do
    local a = ao + 5 + (i - 1) * 6
    local kind, max, need, p = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4], ARGV[a + 6]
    if kind == 'r' or kind == 'q' then p = tonumber(p) end
    local k1, k2 = KEYS[k + 1], KEYS[k + 1]
    if kind == 'r' then k2, k = KEYS[k + 2], k + 2 else k = k + 1 end
    local s, h, t, st, new
    if kind == 'q' then
      -- The admission goes in at once (LPUSH returns the count); a denial
      -- takes it out again. Its instant is never older than the newest.
      ageList(k1, now - p)
      local stamp = redis.call('LINDEX', k1, '0')
      if not stamp or tonumber(stamp) < now then stamp = nowS end
      s, h, t, st, new = redis.call('LPUSH', k1, stamp) - 1, 0, -1, false, false
      pushed[#pushed + 1] = k1
    else
      s, h, t, st, new = usage(kind, k1, k2, now, p, nowS)
    end
    if exceeds(s, h, need, max) then
      for _, k in ipairs(pushed) do redis.call('LPOP', k) end
      if kind == 'r' or kind == 'q' then
        t = fits(k1, s, tonumber(need), tonumber(max), p, kind == 'q')
      end
      redis.call('ZREM', KEYS[1], member)
      return {0, i, s, h, t}
    end
    out[2 * i], out[2 * i + 1] = s, h
    stale[i], fresh[i] = st, new
  end

  k = ko
  for i = 1, n do
    local a = ao + 5 + (i - 1) * 6
    local kind, mode, need, ttl, p = ARGV[a + 1], ARGV[a + 2], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
    local k1, k2 = KEYS[k + 1], KEYS[k + 1]
    if kind == 'r' then k2, k = KEYS[k + 2], k + 2 else k = k + 1 end
    if kind == 'c' then
      redis.call('HINCRBY', k1, mode, need)
      -- A calendar window's expiry is fixed: set it when the window starts.
      if fresh[i] then redis.call('PEXPIRE', k1, ttl) end
    elseif kind == 'e' then
      if stale[i] then
        redis.call('HSET', k1, 's', '0', 'e', p)
      else
        redis.call('HSET', k1, 'e', p)
      end
      redis.call('HINCRBY', k1, mode, need)
      redis.call('PEXPIRE', k1, ttl)
    elseif kind == 'r' then
      redis.call('ZADD', k1, now, id .. '|' .. need)
      redis.call('INCRBY', k2, need)
      redis.call('PEXPIRE', k1, ttl)
      redis.call('PEXPIRE', k2, ttl)
    elseif kind == 'q' then
      redis.call('PEXPIRE', k1, ttl)
    else
      redis.call('ZADD', k1, leaseExp, id)
      redis.call('PEXPIRE', k1, ttl)
      -- Now and then, the leases that expired without a settle go.
      if p == '1' then redis.call('ZREMRANGEBYSCORE', k1, '-inf', nowS) end
    end
  end
  return out
end

local out, ko, ao = settleAll()
local m = #out
for k, v in ipairs(reserve(ko, ao)) do out[m + k] = v end
return out
`

// luaSettleFn defines settle(ko, ao), which ends one reservation: settles
// it (its holds replaced by actual amounts, its leases freed) or, with refund
// set, cancels it (holds and leases freed, the requests it counted taken
// back, nothing charged). KEYS[1..3] are the holds index, the expired holds
// and the ended set; the reservation's keys follow KEYS[ko] (one per limit,
// two for a rolling token window: its log and its sum), its arguments
// ARGV[ao]: hold member, reservation id, now (ms), n, refund (1 or 0), until
// when (ms) a tombstone is kept; then n times (a settle leaves out the
// request counts, final at reserve, which only a cancel changes): kind, mode,
// need (as reserved), actual, key TTL (ms) of a session or the window length
// (ms) of a rolling window, and p: the stamp (ms) of a rolling entry, the new
// expiry (ms) of a session; of these a lease set (l) takes the kind only and
// a calendar counter (c) the first four. ARGV[2] is the ended set's TTL (ms).
//
// It returns 1 when settled, 0 when there was no hold to settle: the
// reservation was settled before, expired more than a day ago, or was never
// made (its reserve is late or was lost); a tombstone then keeps a late
// reserve from committing; then the indexes of its last key and argument.
// settleAll
// runs the settles of ARGV[1]
// reservations and returns their outcomes, and the offsets in KEYS and ARGV
// of what follows them.
const luaSettleFn = `
-- settleWidth is how many arguments a limit of kind takes in a settle.
local function settleWidth(kind)
  if kind == 'l' then return 1 elseif kind == 'c' then return 4 end
  return 6
end

-- dropOldest removes from request list k (newest first) the oldest entry
-- stamped at or after v (after v when strict), found by bisection, and
-- reports whether there was one.
local function dropOldest(k, v, strict)
  local lo, hi, at = 0, redis.call('LLEN', k) - 1, -1
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    local x = tonumber(redis.call('LINDEX', k, mid))
    if x > v or (not strict and x == v) then at, lo = mid, mid + 1 else hi = mid - 1 end
  end
  if at < 0 then return false end
  if at == 0 then
    redis.call('LPOP', k)
  else
    redis.call('LSET', k, at, 'x')
    redis.call('LREM', k, -1, 'x')
  end
  return true
end

-- adjust closes a budget block (blocks.go): it gives back what the block
-- held and did not use, and commits what its requests settled. ARGV[ao]:
-- hold member, block id, now (ms), n, '2', until when (ms) a tombstone is
-- kept; then n times: kind, mode, a1, a2, a3. A held counter (c, h) gives
-- back a1 of h and adds a2 to s; a request counter (c, s) gives back a1
-- requests; a request list (q) drops a1 entries stamped a2; a lease set (l)
-- drops the leases "id.j" for j in a1+1..a2. A block whose hold expired (its
-- replica stalled past the lease TTL) had its held amounts given back by
-- purge: the rest still applies. A block not found was closed already (this
-- call is a retry) and nothing applies.
local function adjust(ko, ao)
  local member, id, nowS, n = ARGV[ao + 1], ARGV[ao + 2], ARGV[ao + 3], tonumber(ARGV[ao + 4])
  local live = redis.call('ZREM', KEYS[1], member) == 1
  if not live and redis.call('ZREM', KEYS[2], member) == 0 then
    local ended = KEYS[3]
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', nowS)
    redis.call('ZADD', ended, ARGV[ao + 6], id)
    redis.call('PEXPIRE', ended, ARGV[2])
    return 0, ko + n, ao + 6 + 5 * n
  end
  local k, a = ko, ao + 6
  for i = 1, n do
    local kind, mode, a1, a2, a3 = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local k1 = KEYS[k + 1]
    k, a = k + 1, a + 5
    if kind == 'c' and mode == 'h' then
      local exists = false
      if live and a1 ~= '0' then
        exists = redis.call('HINCRBY', k1, 'h', '-' .. a1) >= 0
        -- Below 0, the counter had expired and the call made it anew: it goes.
        if not exists then redis.call('DEL', k1) end
      elseif a2 ~= '0' then
        exists = redis.call('EXISTS', k1) == 1
      end
      if exists and a2 ~= '0' then redis.call('HINCRBY', k1, 's', a2) end
    elseif kind == 'c' then
      if a1 ~= '0' and redis.call('EXISTS', k1) == 1 then
        local back = math.min(tonumber(a1), tonumber(redis.call('HGET', k1, 's') or '0'))
        if back > 0 then redis.call('HINCRBY', k1, 's', -back) end
      end
    elseif kind == 'q' then
      if a1 ~= '0' then
        -- A cancel may have taken entries of the block for its own (one
        -- stamped later): the oldest stamped after the block's go instead.
        local short = tonumber(a1) - redis.call('LREM', k1, a1, a2)
        for j = 1, short do
          if not dropOldest(k1, tonumber(a2), true) then break end
        end
      end
    elseif kind == 'l' then
      local from, to = tonumber(a1) + 1, tonumber(a2)
      if from <= to then
        local ms = {}
        for j = from, to do ms[#ms + 1] = id .. '.' .. j end
        redis.call('ZREM', k1, unpack(ms))
      end
    end
  end
  return 1, k, a
end

-- undo takes back a block whose open failed for its caller (its reply was
-- lost or late): found by its id among the holds of its lease expiry, it
-- is closed as never used; not found, it leaves a tombstone so that an open
-- still on its way commits nothing. ARGV[ao]: '', block id, the open's now
-- (ms), n, '3', until when (ms) a tombstone is kept, the open's lease
-- expiry (ms) and list stamp (ms); then n times: kind, mode.
local function undo(ko, ao)
  local id, nowS, n, exp, stampAt = ARGV[ao + 2], ARGV[ao + 3], tonumber(ARGV[ao + 4]), ARGV[ao + 7], ARGV[ao + 8]
  local prefix, member = id .. '*', nil
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], exp, exp)) do
    if string.sub(m, 1, #prefix) == prefix then member = m break end
  end
  if not member then
    local ended = KEYS[3]
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', nowS)
    redis.call('ZADD', ended, ARGV[ao + 6], id)
    redis.call('PEXPIRE', ended, ARGV[2])
    return 0, ko + n, ao + 8 + 2 * n
  end
  redis.call('ZREM', KEYS[1], member)
  local cap = tonumber(string.match(member, '^[^\n]*%*(%d+)'))
  local held = {}
  for key, amt in string.gmatch(member, '\n([^\t\n]+)\t(%d+)') do held[key] = amt end
  local k, a = ko, ao + 8
  for i = 1, n do
    local kind, mode = ARGV[a + 1], ARGV[a + 2]
    local k1 = KEYS[k + 1]
    k, a = k + 1, a + 2
    if kind == 'c' and mode == 'h' then
      local amt = held[k1]
      if amt and redis.call('HINCRBY', k1, 'h', '-' .. amt) < 0 then redis.call('DEL', k1) end
    elseif kind == 'c' then
      if redis.call('EXISTS', k1) == 1 then
        local back = math.min(cap, tonumber(redis.call('HGET', k1, 's') or '0'))
        if back > 0 then redis.call('HINCRBY', k1, 's', -back) end
      end
    elseif kind == 'q' then
      -- The block's entries are stamped st or, if the list's newest was
      -- newer, later: as many of the oldest stamped after st go then.
      local st = stampAt
      if cap == 1 then st = nowS end
      local short = cap - redis.call('LREM', k1, cap, st)
      for j = 1, short do
        if not dropOldest(k1, tonumber(st), true) then break end
      end
    elseif kind == 'l' then
      local ms = {}
      for j = 1, cap do ms[j] = id .. '.' .. j end
      redis.call('ZREM', k1, unpack(ms))
    end
  end
  return 1, k, a
end

local function settle(ko, ao)
  local op = ARGV[ao + 5]
  if op == '2' then return adjust(ko, ao) elseif op == '3' then return undo(ko, ao) end
  -- now is converted only where it is compared: each tonumber is a strtod.
  local member, id, nowS, n, refund = ARGV[ao + 1], ARGV[ao + 2], ARGV[ao + 3], tonumber(ARGV[ao + 4]), ARGV[ao + 5] == '1'
  local live = redis.call('ZREM', KEYS[1], member) == 1
  if not live and redis.call('ZREM', KEYS[2], member) == 0 then
    local ended = KEYS[3]
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', nowS)
    redis.call('ZADD', ended, ARGV[ao + 6], id)
    redis.call('PEXPIRE', ended, ARGV[2])
    local k, a = ko, ao + 6
    for i = 1, n do
      local kind = ARGV[a + 1]
      if kind == 'r' then k = k + 2 else k = k + 1 end
      a = a + settleWidth(kind)
    end
    return 0, k, a
  end
  local k, a = ko, ao + 6
  for i = 1, n do
    -- Past a limit's width the values are the next limit's, and unused.
    local kind, mode, need, actual, ttl, p = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
    a = a + settleWidth(kind)
    local k1, k2 = KEYS[k + 1], KEYS[k + 1]
    if kind == 'r' then k2, k = KEYS[k + 2], k + 2 else k = k + 1 end
    if kind == 'c' and mode == 'h' and live and need ~= '0' then
      -- A live hold is in h, so h stays >= 0 unless the counter is gone
      -- (expired): then the call made it anew, and it goes again.
      if redis.call('HINCRBY', k1, 'h', '-' .. need) < 0 then
        redis.call('DEL', k1)
      elseif not refund then
        redis.call('HINCRBY', k1, 's', actual)
      end
    elseif kind == 'c' or kind == 'e' then
      if mode == 'h' and redis.call('EXISTS', k1) == 1 then
        if live and need ~= '0' then redis.call('HINCRBY', k1, 'h', '-' .. need) end
        if not refund then
          if kind == 'e' then
            local e = redis.call('HGET', k1, 'e')
            if e and tonumber(e) <= tonumber(nowS) then redis.call('HSET', k1, 's', '0') end
            redis.call('HSET', k1, 'e', p)
            redis.call('PEXPIRE', k1, ttl)
          end
          redis.call('HINCRBY', k1, 's', actual)
        end
      elseif mode == 's' and refund and redis.call('EXISTS', k1) == 1 then
        -- A request count is final when reserved; a cancel takes it back,
        -- unless its session expired since and counts from nothing already.
        local v = redis.call('HMGET', k1, 's', 'e')
        if kind == 'c' or not v[2] or tonumber(v[2]) > tonumber(nowS) then
          local back = math.min(tonumber(need), tonumber(v[1] or '0'))
          if back > 0 then redis.call('HINCRBY', k1, 's', -back) end
        end
      end
    elseif kind == 'r' then
      if mode == 'h' and redis.call('ZREM', k1, id .. '|' .. need) == 1 then
        if refund then
          redis.call('DECRBY', k2, need)
        else
          redis.call('ZADD', k1, p, id .. '|' .. actual)
          redis.call('INCRBY', k2, tonumber(actual) - tonumber(need))
        end
      end
    elseif kind == 'q' then
      -- One admission fewer, while it is still in the window: the entry
      -- that goes is the oldest stamped at or after this request's instant
      -- (found by bisection; the list is newest first): this one, or one
      -- stamped no later that it stands for, so that the entries left count
      -- no shorter than the admissions they stand for. (The newest, which
      -- went before, could be a budget block's, stamped ahead.)
      if refund and tonumber(nowS) < tonumber(p) + tonumber(ttl) then dropOldest(k1, tonumber(p), false) end
    elseif kind == 'l' then
      redis.call('ZREM', k1, id)
    end
  end
  return 1, k, a
end

local function settleAll()
  local out, ko, ao = {}, 3, 2
  for j = 1, tonumber(ARGV[1]) do
    local r, k, a = settle(ko, ao)
    out[j] = r
    ko, ao = k, a
  end
  return out, ko, ao
end
`

// luaSettle ends reservations, each as luaSettleFn's settle: a batch of
// settles and cancels is one call, one script for Redis, each applied as
// when alone.
//
// KEYS: the holds index, the expired holds, the ended set, then the keys of
// each reservation in turn (luaSettleFn). ARGV: m, the reservations; the
// ended set's TTL (ms); then each reservation's arguments (luaSettleFn).
//
// Reply: per reservation, 1 or 0 (luaSettleFn).
const luaSettle = luaCommon + luaSettleFn + `
return (settleAll())
`

// luaRenew extends a reservation's leases.
//
// KEYS: the holds index, then the lease sets of the reservation. ARGV: hold
// member, reservation id, new lease expiry (ms), lease set TTL (ms).
//
// Reply: 1, or 0 when the hold is gone (expired or settled).
const luaRenew = `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
return 1
`

// luaRead returns the current use of limits.
//
// ARGV: now (ms), n; then n times: kind, rolling window length (ms).
//
// Reply: per limit {s, h, session expiry (ms) or -1}, as in usage.
const luaRead = luaCommon + `
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
purge(ARGV[1])
local out = {}
for i = 1, n do
  local kind, winMS = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  local k1, k2 = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local s, h, t = usage(kind, k1, k2, now, winMS, ARGV[1])
  out[#out + 1] = s
  out[#out + 1] = h
  out[#out + 1] = t
end
return out
`

// luaReset empties the current window of limits: the settled part of a
// counter (its holds stay), a rolling log, a lease set.
//
// ARGV: n, then n kinds.
const luaReset = `
for i = 1, tonumber(ARGV[1]) do
  local kind, k1, k2 = ARGV[1 + i], KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  if kind == 'c' or kind == 'e' then
    if redis.call('EXISTS', k1) == 1 then redis.call('HSET', k1, 's', '0') end
  elseif kind == 'r' then
    redis.call('DEL', k1, k2)
  else
    redis.call('DEL', k1)
  end
end
return 1
`

// luaGrant runs the settles, cancels and block closes given first (as
// luaSettle), then opens a budget block (blocks.go): it checks every limit
// of a request as luaReserve does and, if all admit it, holds cap requests'
// worth in all of them at once, cap being at most P and small enough that
// each limit gives the block at most 1/share of what it has left (at least
// 1: the request itself).
//
// KEYS: the holds index, the expired holds, the ended set, the settles'
// keys, then one key per limit. ARGV: m and the ended set's TTL, the
// settles' arguments, then: now (ms), block id, lease expiry (ms), n, P,
// the stamp (ms) of the block's request list entries, share; then n times
// (as luaReserve): kind (c, q, l), mode, max, need, key TTL (ms), and p (the
// window length of a request list).
//
// A block's hold member is the block id, "*", cap, then "\n<key>\t<amount>"
// for each held counter; its leases are "id.1" to "id.cap"; its request list
// entries are stamped with the stamp given, or the list's newest if newer.
//
// Reply: the settles' outcomes, then {1, cap, then per limit s, h and the
// stamp of a request list or 0}; {0, i, s, h, t} when limit i denies (as
// luaReserve); {3} when the block was closed before it was made.
const luaGrant = luaCommon + luaSettleFn + luaFits + `
local function grant(ko, ao)
  local nowS = ARGV[ao + 1]
  local now = tonumber(nowS)
  local id, leaseExp, n, cap, stampAt, share = ARGV[ao + 2], ARGV[ao + 3], tonumber(ARGV[ao + 4]), tonumber(ARGV[ao + 5]), ARGV[ao + 6], tonumber(ARGV[ao + 7])
  purge(nowS)
  if redis.call('ZSCORE', KEYS[3], id) then return {3} end
  local base = ao + 7
  local S, H, fresh = {}, {}, {}
  for i = 1, n do
    local a = base + (i - 1) * 6
    local kind, max, need, p = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 6])
    local k1 = KEYS[ko + i]
    local s, h, _, _, new = usage(kind, k1, k1, now, p, nowS)
    if exceeds(s, h, need, max) then
      local t = -1
      if kind == 'q' then t = fits(k1, s, tonumber(need), tonumber(max), p, true) end
      return {0, i, s, h, t}
    end
    local nd = tonumber(need)
    if nd > 0 then
      local c = math.floor((tonumber(max) - tonumber(s) - tonumber(h)) / share / nd)
      if c < cap then cap = c end
    end
    S[i], H[i], fresh[i] = s, h, new
  end
  if cap < 1 then cap = 1 end
  local amts = {}
  for i = 1, n do
    local a = base + (i - 1) * 6
    local max, need = ARGV[a + 3], ARGV[a + 4]
    local amt = need
    if cap > 1 then amt = string.format('%.0f', cap * tonumber(need)) end
    amts[i] = amt
    -- Doubles sized the block: the exact check may still refuse it.
    if cap > 1 and exceeds(S[i], H[i], amt, max) then cap = 1 end
  end
  local member = id .. '*' .. cap
  for i = 1, n do
    local a = base + (i - 1) * 6
    if cap == 1 then amts[i] = ARGV[a + 4] end
    if ARGV[a + 1] == 'c' and ARGV[a + 2] == 'h' and amts[i] ~= '0' then
      member = member .. '\n' .. KEYS[ko + i] .. '\t' .. amts[i]
    end
  end
  if redis.call('ZADD', KEYS[1], 'NX', leaseExp, member) == 0 then return {2, cap} end
  local out = {1, cap}
  for i = 1, n do
    local a = base + (i - 1) * 6
    local kind, mode, ttl = ARGV[a + 1], ARGV[a + 2], ARGV[a + 5]
    local k1, st = KEYS[ko + i], 0
    if kind == 'c' then
      redis.call('HINCRBY', k1, mode, amts[i])
      if fresh[i] then redis.call('PEXPIRE', k1, ttl) end
    elseif kind == 'q' then
      -- Stamped no earlier than the last request the block may admit, so
      -- that each entry counts at least as long as the request that uses it
      -- (a block of one admits only the request that opens it, now).
      st = stampAt
      if cap == 1 then st = nowS end
      local newest = redis.call('LINDEX', k1, '0')
      if newest and tonumber(newest) > tonumber(st) then st = newest end
      local vs = {}
      for j = 1, cap do vs[j] = st end
      redis.call('LPUSH', k1, unpack(vs))
      redis.call('PEXPIRE', k1, ttl)
    else
      redis.call('ZREMRANGEBYSCORE', k1, '-inf', nowS)
      local vs = {}
      for j = 1, cap do
        vs[2 * j - 1], vs[2 * j] = leaseExp, id .. '.' .. j
      end
      redis.call('ZADD', k1, unpack(vs))
      redis.call('PEXPIRE', k1, ttl)
    end
    out[#out + 1] = S[i]
    out[#out + 1] = H[i]
    out[#out + 1] = st
  end
  return out
end

local out, ko, ao = settleAll()
local m = #out
for k, v in ipairs(grant(ko, ao)) do out[m + k] = v end
return out
`

// luaGrantRenew extends a block's hold and leases.
//
// KEYS: the holds index, then the block's lease sets. ARGV: hold member,
// block id, new lease expiry (ms), lease set TTL (ms), the block's leases
// per set.
//
// Reply: 1, or 0 when the hold is gone (expired or closed).
const luaGrantRenew = `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local n = tonumber(ARGV[5])
for i = 2, #KEYS do
  if n > 0 then
    local vs = {'XX'}
    for j = 1, n do
      vs[#vs + 1] = ARGV[3]
      vs[#vs + 1] = ARGV[2] .. '.' .. j
    end
    redis.call('ZADD', KEYS[i], unpack(vs))
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
return 1
`

// luaFits defines fits, for the denials of luaReserve and luaGrant.
const luaFits = `
-- fits returns the instant (ms) at which enough of rolling log k has aged
-- out for need to fit under max, or -1.
local function fits(k, used, need, max, winMS, count)
  if need > max then return -1 end
  if count then
    -- A request list, newest first: room comes when the entry at rank
    -- max - need (from the newest) ages out.
    local v = redis.call('LINDEX', k, max - need)
    if not v then return -1 end
    return tonumber(v) + winMS
  end
  local start = 0
  while true do
    local r = redis.call('ZRANGE', k, start, start + 99, 'WITHSCORES')
    if #r == 0 then return -1 end
    for j = 1, #r, 2 do
      used = used - amountOf(r[j])
      if need <= max - used then return tonumber(r[j + 1]) + winMS end
    end
    start = start + 100
  end
end

`
