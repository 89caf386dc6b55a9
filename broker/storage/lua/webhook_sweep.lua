-- webhook_sweep.lua: the delivery worker's periodic pass over one app: trim its dead letters to
-- their retention and count, and, unless a worker is delivering for the app right now, move the
-- oldest pending outbox events beyond the outbox bound to the dead letters ("outbox overflow");
-- the finished entries left in the stream go too, so it then holds at most the bound.
-- KEYS[1]  lease     KEYS[2]  cursor    KEYS[3]  status    KEYS[4]  outbox
-- KEYS[5]  dead      KEYS[6]  dead index                     (all in the app's slot)
-- ARGV[1]  now (unix seconds)   ARGV[2]  now, precise (dead-letter order; 10 us apart in queue order)
-- ARGV[3]  dead-letter cutoff   ARGV[4]  dead letters kept at most   ARGV[5]  outbox bound
-- Returns {dead letters trimmed, outbox events dead-lettered}.

-- include: webhook_dead

local moved = 0
local bound = tonumber(ARGV[5])
local length = redis.call('XLEN', KEYS[4])
if redis.call('EXISTS', KEYS[1]) == 0 and length > bound then
  local cursor = redis.call('GET', KEYS[2])
  local from, finished = '-', 0
  if cursor then
    from = '(' .. cursor
    finished = #redis.call('XRANGE', KEYS[4], '-', cursor)  -- at most the last finished one, normally
  end
  local pending = length - finished
  local entries = {}
  if pending > bound then
    entries = redis.call('XRANGE', KEYS[4], from, '+', 'COUNT', pending - bound)
  end
  for _, entry in ipairs(entries) do
    local sid, raw = entry[1], ''
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'e' then raw = entry[2][i + 1] end
    end
    local ok, event = pcall(cjson.decode, raw)
    local id = 'malformed:' .. sid
    if ok and type(event) == 'table' and type(event['id']) == 'string' then id = event['id'] end
    local doc = cjson.encode({event = raw, attempts = 0, last_status = '', last_error = 'outbox overflow',
      dead_at = tonumber(ARGV[1])})
    redis.call('HSET', KEYS[5], id, doc)
    redis.call('ZADD', KEYS[6], string.format('%.6f', tonumber(ARGV[2]) + moved * 0.00001), id)
    moved = moved + 1
  end
  if moved > 0 then
    local last = entries[#entries][1]
    redis.call('SET', KEYS[2], last)
    redis.call('XTRIM', KEYS[4], 'MINID', last)
    redis.call('XDEL', KEYS[4], last)
    redis.call('HSET', KEYS[3], 'state', 'idle', 'event_id', '', 'stream_id', '', 'attempts', '0',
      'next_attempt_at', '0', 'last_error', 'outbox overflow: ' .. moved .. ' event(s) dead-lettered',
      'last_attempt_at', ARGV[1])
  elseif finished > 0 then
    redis.call('XTRIM', KEYS[4], 'MINID', cursor)
    redis.call('XDEL', KEYS[4], cursor)
  end
end
local trimmed = dead_trim(5, 6, ARGV[3], tonumber(ARGV[4]))
return {trimmed, moved}
