-- ledger_append.lua: append one batch of records to the ledger, under the sequencer's lock.
-- KEYS[1]  lock      KEYS[2]  tree size    KEYS[3]  sequenced ids    KEYS[4]  records
-- KEYS[5..] every other ledger key the batch writes (levels, indexes); all {ledger}
-- ARGV[1]  lock token            ARGV[2]  expected tree size    ARGV[3]  new tree size
-- ARGV[4]  record ids (JSON)     ARGV[5]  ops (JSON [command, KEYS index, field or byte offset,
--          value]; SETRANGE values are hex, written as bytes; HSETHEX is an HSET of a hex value,
--          written as bytes: a packed record body)
-- Returns how many records were appended; errors (nothing written) if the lock was lost, the
-- tree grew meanwhile or a record is already sequenced.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEDGER lock lost') end
local size = tonumber(redis.call('GET', KEYS[2]) or '0')
if size ~= tonumber(ARGV[2]) then return redis.error_reply('LEDGER tree size changed') end
local ids = cjson.decode(ARGV[4])
for _, id in ipairs(ids) do
  if redis.call('HEXISTS', KEYS[3], id) == 1 then return redis.error_reply('LEDGER already sequenced') end
end
-- A subtree hash or a packed body comes as hex (JSON carries no bytes) and is written as bytes.
local function unhex(h)
  return (string.gsub(h, '..', function(pair) return string.char(tonumber(pair, 16)) end))
end
local ops = cjson.decode(ARGV[5])
for _, op in ipairs(ops) do
  local command, value = op[1], op[4]
  if command == 'SETRANGE' then value = unhex(value) end
  if command == 'HSETHEX' then command, value = 'HSET', unhex(value) end
  redis.call(command, KEYS[tonumber(op[2])], op[3], value)
end
redis.call('SET', KEYS[2], ARGV[3])
return #ids
