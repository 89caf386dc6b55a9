-- webhook_redeliver.lua: move dead-lettered events back to the end of the app's outbox (a new
-- attempt series, same event ids), oldest first; all of them or, if one id is not a dead letter,
-- none.
-- KEYS[1]  dead      KEYS[2]  dead index    KEYS[3]  outbox    KEYS[4]  attempt log
-- ARGV[1]  now       ARGV[2]  attempt log maxlen    ARGV[3]  who asked (for the log)
-- ARGV[4]  'all' (every dead letter) or 'ids'       ARGV[5..] event ids (with 'ids')
-- Returns {1, id, ...} the ids requeued (in queue order), or {0, id} the first unknown id.

-- include: webhook_dead

local ids
if ARGV[4] == 'all' then
  ids = redis.call('ZRANGE', KEYS[2], 0, -1)
else
  local given = {unpack(ARGV, 5)}
  local missing
  ids, missing = dead_pick(1, given)
  if not ids then return {0, missing} end
  local seen, order = {}, {}
  for _, id in ipairs(ids) do
    if not seen[id] then
      seen[id] = true
      order[#order + 1] = {id, tonumber(redis.call('ZSCORE', KEYS[2], id)) or 0}
    end
  end
  table.sort(order, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  ids = {}
  for i, pair in ipairs(order) do ids[i] = pair[1] end
end
if #ids == 0 then return {1} end
for _, id in ipairs(ids) do
  local doc = cjson.decode(redis.call('HGET', KEYS[1], id))
  redis.call('XADD', KEYS[3], '*', 'e', doc['event'])
end
dead_drop(1, 2, ids)
dead_log(4, ARGV[2], #ids == 1 and ids[1] or (#ids .. ' events'), 'replayed', ARGV[1], ARGV[3])
local out = {1}
for i, id in ipairs(ids) do out[i + 1] = id end
return out
