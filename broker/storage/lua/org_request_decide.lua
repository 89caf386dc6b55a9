-- org_request_decide.lua: decide an app request once (two admins at once: one wins).
-- KEYS[1]  the org's app requests hash
-- ARGV[1]  request id            ARGV[2]  new record (JSON)     ARGV[3]  expected status
-- Returns 1 if written, 0 if there is no such request, -1 if its status is not the expected one.

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec['status'] ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
