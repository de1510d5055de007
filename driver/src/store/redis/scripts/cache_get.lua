-- A cached value with the time it has left.
-- KEYS[1]: the entry. Returns {value, ms left} or false.
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
