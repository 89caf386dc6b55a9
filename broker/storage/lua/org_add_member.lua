-- org_add_member.lua: claim the next join sequence and record the member and role in one step.
-- KEYS[1]  the org's members     KEYS[2]  the org's roles    KEYS[3]  join sequence counter
--          (all in {o:<org_id>})
-- ARGV[1]  user id               ARGV[2]  role entry (JSON)
-- Returns 1 if the member is new, 0 if only the role changed.

local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not existing then
  local seq = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[1], seq, ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if existing then return 0 end
return 1
