-- webhook_commit.lua: record one delivery attempt and move the app's outbox on (or schedule a retry,
-- or dead-letter the event), only while the worker still holds the app's lease.
-- KEYS[1]  lease     KEYS[2]  cursor    KEYS[3]  status    KEYS[4]  attempt log
-- KEYS[5]  outbox    KEYS[6]  dead      KEYS[7]  dead index           (all in the app's slot)
-- ARGV[1]  lease token           ARGV[2]  mode: ok | retry | dead     ARGV[3]  stream id
-- ARGV[4]  event id              ARGV[5]  attempts                    ARGV[6]  last status
-- ARGV[7]  last error            ARGV[8]  next attempt at             ARGV[9]  now
-- ARGV[10] attempt log maxlen    ARGV[11] dead-letter entry (JSON)
-- ARGV[12] now, precise (dead-letter order)                           ARGV[13] dead-letter cutoff
-- ARGV[14] dead letters kept at most
-- A new dead letter trims the app's dead letters on write: those dead before the cutoff (now minus
-- BROKER_WEBHOOK_DEAD_RETENTION_SECONDS) go, then the oldest beyond BROKER_WEBHOOK_DEAD_MAX.
-- Returns 1, or 0 when another worker holds the lease.

-- include: webhook_dead

local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
local function after(a, b)
  if not b then return true end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local mode = ARGV[2]
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[4], 'attempt', ARGV[5],
  'status', ARGV[6], 'error', ARGV[7], 'outcome', mode, 'time', ARGV[9])
if mode == 'retry' then
  redis.call('HSET', KEYS[3], 'state', 'retrying', 'event_id', ARGV[4], 'stream_id', ARGV[3],
    'attempts', ARGV[5], 'last_status', ARGV[6], 'last_error', ARGV[7], 'next_attempt_at', ARGV[8],
    'last_attempt_at', ARGV[9])
else
  local current = redis.call('GET', KEYS[2])
  if after(ARGV[3], current) then redis.call('SET', KEYS[2], ARGV[3]) end
  redis.call('XTRIM', KEYS[5], 'MINID', ARGV[3])
  if mode == 'dead' then
    redis.call('HSET', KEYS[6], ARGV[4], ARGV[11])
    redis.call('ZADD', KEYS[7], ARGV[12], ARGV[4])
    dead_trim(6, 7, ARGV[13], tonumber(ARGV[14]))
  else
    redis.call('HSET', KEYS[3], 'last_success_at', ARGV[9], 'last_delivered_event', ARGV[4])
  end
  redis.call('HSET', KEYS[3], 'state', 'idle', 'event_id', '', 'stream_id', '', 'attempts', '0',
    'last_status', ARGV[6], 'last_error', ARGV[7], 'next_attempt_at', '0', 'last_attempt_at', ARGV[9])
end
if holder then redis.call('DEL', KEYS[1]) end
return 1
