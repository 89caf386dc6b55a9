-- delete_if_equals.lua: compare-and-delete on one key: release a lock or lease only while we hold
-- it, give back a unique-name claim only while it still points at us.
-- KEYS[1]  the key
-- ARGV[1]  the value it must still hold
-- Returns 1 if deleted, else 0.

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
