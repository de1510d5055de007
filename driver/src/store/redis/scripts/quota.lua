-- Fixed-period quota counters, decided atomically next to the data.
-- KEYS: one hash per counter: s = period start (Unix s), c = calls, b = bytes.
-- ARGV: add_calls, add_bytes, mode ("check", "take": count add_calls when
--       every counter has room, "force": count whatever the limits), then per
--       counter: calls limit (-1: none), bytes limit (-1: none), period (s,
--       0 = never renews), anchor (Unix s, or "" = the key's first use).
-- A counter has room while its calls and bytes are below their limits.
-- Returns {now, admitted, then per counter: start, calls, bytes}.
local now = tonumber(redis.call('TIME')[1])
local add_calls = tonumber(ARGV[1])
local add_bytes = tonumber(ARGV[2])
local mode = ARGV[3]
local n = #KEYS
local starts, calls, bytes, periods, changed = {}, {}, {}, {}, {}
local room = true
for i = 1, n do
  local o = 3 + 4 * (i - 1)
  local lc = tonumber(ARGV[o + 1])
  local lb = tonumber(ARGV[o + 2])
  local period = tonumber(ARGV[o + 3])
  local anchor = tonumber(ARGV[o + 4])
  local v = redis.call('HMGET', KEYS[i], 's', 'c', 'b')
  local start = tonumber(v[1])
  local c = tonumber(v[2]) or 0
  local b = tonumber(v[3]) or 0
  local base = anchor or start or now
  local ps = base
  if period > 0 and now >= base then
    ps = base + math.floor((now - base) / period) * period
  end
  if start == nil or ps > start then
    start = ps
    c = 0
    b = 0
    changed[i] = true
  end
  if (lc >= 0 and c >= lc) or (lb >= 0 and b >= lb) then room = false end
  starts[i], calls[i], bytes[i], periods[i] = start, c, b, period
end
local admitted = mode == 'force' or room
if admitted and mode ~= 'check' and (add_calls > 0 or add_bytes > 0) then
  for i = 1, n do
    calls[i] = calls[i] + add_calls
    bytes[i] = bytes[i] + add_bytes
    changed[i] = true
  end
end
local out = {now, admitted and 1 or 0}
for i = 1, n do
  if changed[i] then
    redis.call('HSET', KEYS[i], 's', starts[i], 'c', calls[i], 'b', bytes[i])
    if periods[i] > 0 then
      -- A period's counts live until it ends.
      redis.call('EXPIREAT', KEYS[i], starts[i] + periods[i])
    else
      redis.call('PERSIST', KEYS[i])
    end
  end
  out[#out + 1] = starts[i]
  out[#out + 1] = calls[i]
  out[#out + 1] = bytes[i]
end
return out
