-- _webhook_dead.lua: the dead-letter helpers the webhook scripts share (an app's dead-letter hash
-- and its index, a sorted set of event id -> time dead-lettered).
-- A fragment, not a script: the loader replaces a line "-- include: webhook_dead" with this file.
-- KEYS: none of its own: the functions take the positions in KEYS of the including script's
--   dead-letter hash (d), its index (x) and the attempt log (l).
-- ARGV: none of its own.
--
-- dead_drop(d, x, ids): delete these dead letters; returns how many ids were given.
-- dead_trim(d, x, cutoff, max): delete the dead letters dead before cutoff (unix seconds), then the
--   oldest beyond max; returns how many went.
-- dead_pick(d, ids): ids as given, or false and the first id that is not a dead letter.
-- dead_log(l, maxlen, what, outcome, now, by): one audit entry in the capped attempt log.

local function dead_drop(d, x, ids)
  for i = 1, #ids, 500 do
    local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.call('HDEL', KEYS[d], unpack(chunk))
    redis.call('ZREM', KEYS[x], unpack(chunk))
  end
  return #ids
end

local function dead_trim(d, x, cutoff, max)
  local gone = dead_drop(d, x, redis.call('ZRANGEBYSCORE', KEYS[x], '-inf', '(' .. cutoff))
  local left = redis.call('ZCARD', KEYS[x])
  if left > max then
    gone = gone + dead_drop(d, x, redis.call('ZRANGE', KEYS[x], 0, left - max - 1))
  end
  return gone
end

local function dead_pick(d, ids)
  for _, id in ipairs(ids) do
    if redis.call('HEXISTS', KEYS[d], id) == 0 then return false, id end
  end
  return ids
end

local function dead_log(l, maxlen, what, outcome, now, by)
  redis.call('XADD', KEYS[l], 'MAXLEN', '~', maxlen, '*', 'event', what, 'attempt', '', 'status', '',
    'error', '', 'outcome', outcome, 'time', now, 'by', by)
end
