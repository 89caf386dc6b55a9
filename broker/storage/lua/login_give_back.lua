-- login_give_back.lua: give an attempt back, unless its window ended meanwhile (never leave a
-- counter without a TTL).
-- KEYS[1]  the failure counter
-- ARGV: none
-- Returns the new count, or 0.

if redis.call('TTL', KEYS[1]) > 0 then return redis.call('DECR', KEYS[1]) end
return 0
