-- webhook_redeliver.lua: move a dead-lettered event back to the end of the app's outbox.
-- KEYS[1]  dead      KEYS[2]  dead index    KEYS[3]  outbox    KEYS[4]  status (unused)
-- ARGV[1]  event id
-- Returns 1 if requeued, 0 if the event is not dead-lettered.

local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local doc = cjson.decode(entry)
redis.call('XADD', KEYS[3], '*', 'e', doc['event'])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
