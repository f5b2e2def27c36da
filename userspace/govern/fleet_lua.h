/* fleet_lua.h: the Lua scripts fleet.c runs in Redis. Private to fleet.c.
 *
 * reserve: KEYS = nb budget counters, then nr rate buckets. ARGV = rid, now (unix s), deadline,
 * cost, nb, nr; per budget: kind (0 calendar, 1 rolling), limit, slot, nslots, ttl; per bucket:
 * requests, burst, period (us). First every counter's reservations past their deadline are
 * given back and rolling slots that left the window dropped; then every budget and bucket is
 * checked, and only when all pass is anything changed. Returns {0} admitted, {1, i, spent,
 * reserved, oldest slot} budget i (1-based) refused, {2, j, retry_ms} bucket j refused.
 * Money is integer micro-units (HINCRBY); Lua's doubles hold them exactly below 2^53
 * (9 * 10^9 currency units). Buckets count tokens as doubles against Redis's clock.
 *
 * settle: KEYS = the reservation's counters, then (a commit: amount not "0") the charge's
 * marker <prefix>{<tag of the first counter>}:c:<rid>. ARGV = rid, amount ("0": release), nb;
 * per counter: kind, slot start, ttl; then (a commit) the marker's lifetime in ms. A commit
 * whose marker exists already (a replay of one Redis ran but whose reply was lost) changes
 * nothing and answers {1}; otherwise the marker is set, the reservation is taken out of each
 * counter (when it is still there: a reservation past its deadline is already gone) and
 * amount charged: {0}. A release needs no marker: taking a reservation out twice is a no-op.
 * A reservation lives in its counter's hash (r:<rid> its cost, d:<rid> its deadline), so every
 * script touches only the keys it declares: on a Redis Cluster a slot being migrated is
 * redirected (ASK/TRYAGAIN) before a script runs, never half way through it.
 *
 * usage: KEYS = one counter. ARGV = kind, now, slot, nslots. Returns {spent, reserved}.
 *
 * debit: KEYS = rate buckets. ARGV = n; per bucket: requests, burst, period (us). Each bucket
 * is refilled as reserve does and n tokens taken, down to empty at most. Always {0}.
 */
#ifndef WARDEN_FLEET_LUA_H
#define WARDEN_FLEET_LUA_H

#define FLEET_LUA_EXPIRE \
	"local function expire(k, now)\n" \
	"  local h = redis.call('HGETALL', k)\n" \
	"  for j = 1, #h, 2 do\n" \
	"    if string.sub(h[j], 1, 2) == 'd:' and tonumber(h[j + 1]) <= now then\n" \
	"      local m = string.sub(h[j], 3)\n" \
	"      local c = redis.call('HGET', k, 'r:'..m)\n" \
	"      if c then redis.call('HINCRBY', k, 'reserved', '-'..c) end\n" \
	"      redis.call('HDEL', k, 'r:'..m, h[j])\n" \
	"    end\n" \
	"  end\n" \
	"end\n" \
	"local function spent_of(k, kind, now, slot, nslots)\n" \
	"  if kind == 0 then return tonumber(redis.call('HGET', k, 'spent') or '0'), 0 end\n" \
	"  local keep = now - now % slot - (nslots - 1) * slot\n" \
	"  local h = redis.call('HGETALL', k)\n" \
	"  local sum, oldest = 0, 0\n" \
	"  for j = 1, #h, 2 do\n" \
	"    if string.sub(h[j], 1, 2) == 's:' then\n" \
	"      local s = tonumber(string.sub(h[j], 3))\n" \
	"      if s < keep then redis.call('HDEL', k, h[j])\n" \
	"      else\n" \
	"        sum = sum + tonumber(h[j + 1])\n" \
	"        if oldest == 0 or s < oldest then oldest = s end\n" \
	"      end\n" \
	"    end\n" \
	"  end\n" \
	"  return sum, oldest\n" \
	"end\n"

#define FLEET_LUA_RESERVE FLEET_LUA_EXPIRE \
	"local rid, now, deadline, cost = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])\n" \
	"local nb, nr = tonumber(ARGV[5]), tonumber(ARGV[6])\n" \
	"for i = 1, nb do\n" \
	"  local k, a = KEYS[i], 6 + (i - 1) * 5\n" \
	"  expire(k, now)\n" \
	"  local spent, oldest = spent_of(k, tonumber(ARGV[a + 1]), now, tonumber(ARGV[a + 3]),\n" \
	"                                 tonumber(ARGV[a + 4]))\n" \
	"  local reserved = tonumber(redis.call('HGET', k, 'reserved') or '0')\n" \
	"  if spent + reserved + cost > tonumber(ARGV[a + 2]) then\n" \
	"    return {1, i, spent, reserved, oldest}\n" \
	"  end\n" \
	"end\n" \
	"local toks, t = {}, redis.call('TIME')\n" \
	"local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])\n" \
	"local worst, wj = -1, 0\n" \
	"for j = 1, nr do\n" \
	"  local k, a = KEYS[nb + j], 6 + nb * 5 + (j - 1) * 3\n" \
	"  local req, burst, per = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n" \
	"  local h = redis.call('HMGET', k, 't', 'ts')\n" \
	"  local tok, ts = tonumber(h[1]), tonumber(h[2])\n" \
	"  if not tok or not ts then tok, ts = burst, nowus end\n" \
	"  if nowus > ts then tok = math.min(burst, tok + (nowus - ts) * req / per) end\n" \
	"  toks[j] = tok\n" \
	"  if tok < 1 then\n" \
	"    local w = math.ceil((1 - tok) * per / req / 1000)\n" \
	"    if w > worst then worst, wj = w, j end\n" \
	"  end\n" \
	"end\n" \
	"if wj > 0 then return {2, wj, worst} end\n" \
	"for i = 1, nb do\n" \
	"  local k, a = KEYS[i], 6 + (i - 1) * 5\n" \
	"  if cost > 0 then\n" \
	"    redis.call('HINCRBY', k, 'reserved', ARGV[4])\n" \
	"    redis.call('HSET', k, 'r:'..rid, ARGV[4], 'd:'..rid, deadline)\n" \
	"  end\n" \
	"  redis.call('EXPIRE', k, ARGV[a + 5])\n" \
	"end\n" \
	"for j = 1, nr do\n" \
	"  local k, a = KEYS[nb + j], 6 + nb * 5 + (j - 1) * 3\n" \
	"  local req, burst, per = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n" \
	"  redis.call('HSET', k, 't', string.format('%.6f', toks[j] - 1), 'ts', string.format('%d', nowus))\n" \
	"  redis.call('PEXPIRE', k, math.ceil(burst * per / req / 1000) + 1000)\n" \
	"end\n" \
	"return {0}\n"

#define FLEET_LUA_SETTLE \
	"local rid, amount, nb = ARGV[1], ARGV[2], tonumber(ARGV[3])\n" \
	"if amount ~= '0' and not redis.call('SET', KEYS[nb + 1], '1', 'NX', 'PX', ARGV[4 + nb * 3]) then\n" \
	"  return {1}\n" \
	"end\n" \
	"for i = 1, nb do\n" \
	"  local k, a = KEYS[i], 3 + (i - 1) * 3\n" \
	"  local c = redis.call('HGET', k, 'r:'..rid)\n" \
	"  if c then\n" \
	"    redis.call('HINCRBY', k, 'reserved', '-'..c)\n" \
	"    redis.call('HDEL', k, 'r:'..rid, 'd:'..rid)\n" \
	"  end\n" \
	"  if amount ~= '0' then\n" \
	"    if ARGV[a + 1] == '0' then redis.call('HINCRBY', k, 'spent', amount)\n" \
	"    else redis.call('HINCRBY', k, 's:'..ARGV[a + 2], amount) end\n" \
	"    redis.call('EXPIRE', k, ARGV[a + 3])\n" \
	"  end\n" \
	"end\n" \
	"return {0}\n"

#define FLEET_LUA_USAGE FLEET_LUA_EXPIRE \
	"local now = tonumber(ARGV[2])\n" \
	"expire(KEYS[1], now)\n" \
	"local spent = spent_of(KEYS[1], tonumber(ARGV[1]), now, tonumber(ARGV[3]), tonumber(ARGV[4]))\n" \
	"return {spent, tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')}\n"

#define FLEET_LUA_DEBIT \
	"local n, t = tonumber(ARGV[1]), redis.call('TIME')\n" \
	"local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])\n" \
	"for j = 1, #KEYS do\n" \
	"  local k, a = KEYS[j], 1 + (j - 1) * 3\n" \
	"  local req, burst, per = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n" \
	"  local h = redis.call('HMGET', k, 't', 'ts')\n" \
	"  local tok, ts = tonumber(h[1]), tonumber(h[2])\n" \
	"  if not tok or not ts then tok, ts = burst, nowus end\n" \
	"  if nowus > ts then tok = math.min(burst, tok + (nowus - ts) * req / per) end\n" \
	"  tok = math.max(0, tok - n)\n" \
	"  redis.call('HSET', k, 't', string.format('%.6f', tok), 'ts', string.format('%d', math.max(nowus, ts)))\n" \
	"  redis.call('PEXPIRE', k, math.ceil(burst * per / req / 1000) + 1000)\n" \
	"end\n" \
	"return {0}\n"

#endif
