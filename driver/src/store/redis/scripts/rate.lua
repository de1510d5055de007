-- Sliding-window rate counters, decided atomically next to the data.
-- KEYS: one hash per counter: p = period (ms), h = newest bucket index,
--       "0".."11" = calls per bucket slot (index % 12).
-- ARGV: cost, add, force ("1": count whatever the limits), then per counter:
--       limit, period (ms).
-- The window is 12 buckets aligned to the Unix epoch on Redis's clock, so
-- every gateway sees the same buckets. A counter is admitted when `cost` more
-- calls fit in every counter (all or nothing); then `add` calls are counted
-- in each. Returns {now_ms, admitted, then per counter: head, 12 counts}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local add = tonumber(ARGV[2])
local force = ARGV[3] == '1'
local n = #KEYS
local heads, counts, changed = {}, {}, {}
local fits = true
for i = 1, n do
  local limit = tonumber(ARGV[2 + 2 * i])
  local period = tonumber(ARGV[3 + 2 * i])
  local cur = math.floor(now * 12 / period)
  local v = redis.call('HMGET', KEYS[i], 'p', 'h', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11')
  local head = tonumber(v[2])
  local same = head ~= nil and tonumber(v[1]) == period
  local c = {}
  for s = 0, 11 do
    c[s] = same and (tonumber(v[s + 3]) or 0) or 0
  end
  if not same then
    -- New, or the policy's period changed: a fresh window.
    head = cur
    changed[i] = true
  end
  if cur > head then
    if cur - head >= 12 then
      for s = 0, 11 do c[s] = 0 end
    else
      for j = head + 1, cur do c[j % 12] = 0 end
    end
    head = cur
    changed[i] = true
  end
  local total = 0
  for s = 0, 11 do total = total + c[s] end
  if total + cost > limit then fits = false end
  heads[i] = head
  counts[i] = c
end
local admitted = force or fits
if admitted and add > 0 then
  for i = 1, n do
    local s = heads[i] % 12
    counts[i][s] = counts[i][s] + add
    -- The window did not move: only the newest bucket is written.
    if not changed[i] then changed[i] = 'add' end
  end
end
local out = {now, admitted and 1 or 0}
for i = 1, n do
  local c = counts[i]
  if changed[i] == true then
    local period = tonumber(ARGV[3 + 2 * i])
    redis.call('HSET', KEYS[i], 'p', period, 'h', heads[i],
      '0', c[0], '1', c[1], '2', c[2], '3', c[3], '4', c[4], '5', c[5],
      '6', c[6], '7', c[7], '8', c[8], '9', c[9], '10', c[10], '11', c[11])
    -- A window lives for its period after its newest bucket started (set
    -- whenever the window moves, so it always covers the newest bucket).
    redis.call('PEXPIRE', KEYS[i], period + math.ceil(period / 12) + 1000)
  elseif changed[i] == 'add' then
    redis.call('HINCRBY', KEYS[i], tostring(heads[i] % 12), add)
  end
  out[#out + 1] = heads[i]
  for s = 0, 11 do out[#out + 1] = c[s] end
end
return out
