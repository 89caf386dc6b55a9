-- pexpire_if_equals.lua: extend a lock only while we hold it.
-- KEYS[1]  the lock key
-- ARGV[1]  our lock token        ARGV[2]  new ttl (milliseconds)
-- Returns 1 if extended, else 0.

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
