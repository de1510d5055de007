-- A limit-concurrency slot: a lease in a sorted set scored by its expiry.
-- KEYS[1]: the slot set. ARGV: max, lease id, lease length (ms).
-- Expired leases (a gateway that died holding them) are dropped first.
-- Returns 1 when the slot was taken, 0 when all `max` are.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
return 0
