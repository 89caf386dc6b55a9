-- hset_if_exists.lua: set fields on a hash only if it still exists (an update must never
-- resurrect a deleted app or installation).
-- KEYS[1]  the hash
-- ARGV     field, value, field, value, ...
-- Returns 1 if written, 0 if the hash does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
