-- webhook_dead_purge.lua: delete dead-lettered events of an app for good; all of the given ids or,
-- if one id is not a dead letter, none.
-- KEYS[1]  dead      KEYS[2]  dead index    KEYS[3]  attempt log
-- ARGV[1]  now       ARGV[2]  attempt log maxlen    ARGV[3]  who asked (for the log)
-- ARGV[4]  'all' (every dead letter) or 'ids'       ARGV[5..] event ids (with 'ids')
-- Returns {1, id, ...} the ids deleted, or {0, id} the first unknown id.

-- include: webhook_dead

local ids
if ARGV[4] == 'all' then
  ids = redis.call('ZRANGE', KEYS[2], 0, -1)
else
  local missing
  ids, missing = dead_pick(1, {unpack(ARGV, 5)})
  if not ids then return {0, missing} end
  local seen, unique = {}, {}
  for _, id in ipairs(ids) do
    if not seen[id] then seen[id] = true; unique[#unique + 1] = id end
  end
  ids = unique
end
if #ids == 0 then return {1} end
dead_drop(1, 2, ids)
dead_log(3, ARGV[2], #ids == 1 and ids[1] or (#ids .. ' events'), 'purged', ARGV[1], ARGV[3])
local out = {1}
for i, id in ipairs(ids) do out[i + 1] = id end
return out
