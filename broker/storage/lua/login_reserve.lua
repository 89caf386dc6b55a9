-- login_reserve.lua: count a sign-in attempt in a fixed window that the first attempt starts
-- (EXPIRE NX needs Redis 7; this works on 6 too). Counted before the password is checked, so
-- parallel attempts cannot slip past the limit between a check and a count.
-- KEYS[1]  the failure counter (per account or per address)
-- ARGV[1]  window seconds
-- Returns {count, seconds left in the window}.

local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
