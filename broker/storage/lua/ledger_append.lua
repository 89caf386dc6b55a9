-- ledger_append.lua: append one batch of records to the ledger, under the sequencer's lock.
-- KEYS[1]  lock      KEYS[2]  tree size    KEYS[3]  the id map of the first new leaf's block
-- KEYS[4]  the log's clock
-- KEYS[5..] every other ledger key the batch writes (levels, views, the clock); all the log's tag
-- ARGV[1]  lock token            ARGV[2]  expected tree size    ARGV[3]  new tree size
-- ARGV[4]  record ids (JSON)     ARGV[5]  ops (JSON [command, KEYS index, field or byte offset,
--          value]): SETRANGE (a subtree hash or an id map's newest time), RPUSHBIN (a packed record
--          body, to its block's list), VIEWBIN (a reader view's entry, after its last one), each with
--          the length of its bytes as value, the bytes themselves being the next ones of ARGV[7];
--          SET (the log's clock) or HSET (an id map's entry) with the value as it is
-- ARGV[6]  the blocks whose id maps must not hold any of the ids yet (JSON list of numbers)
-- ARGV[7]  the binary values of the ops, one after the other (JSON carries no bytes; hex decoded
--          here cost more than all the writes)
-- Derived keys (the id maps of ARGV[6], named like KEYS[3]): carry the hash tag of KEYS[1] (the log's).
-- Returns how many records were appended; errors (nothing written) if the lock was lost, the
-- tree grew meanwhile or a record is already sequenced.

-- include: views

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEDGER lock lost') end
local size = tonumber(redis.call('GET', KEYS[2]) or '0')
if size ~= tonumber(ARGV[2]) then return redis.error_reply('LEDGER tree size changed') end
local ids = cjson.decode(ARGV[4])
local id_map = string.match(KEYS[3], '^(.*:ids:)%d+$')
for _, block in ipairs(cjson.decode(ARGV[6] or '[]')) do
  for _, id in ipairs(ids) do
    if redis.call('HEXISTS', id_map .. block, id) == 1 then
      return redis.error_reply('LEDGER already sequenced')
    end
  end
end
-- The next `len` bytes of ARGV[7].
local blob, at = ARGV[7] or '', 1
local function take(len)
  local piece = string.sub(blob, at, at + len - 1)
  at = at + len
  return piece
end
-- Strings written at growing offsets (subtree hashes, view entries) grow by about an eighth at a
-- time, with an exact SET (Redis would double a string's allocation as SETRANGE or APPEND grows it):
-- bytes past what is written are zero, which a hash reads as missing and a view as its end.
local function room(k, need)
  local len = redis.call('STRLEN', KEYS[k])
  if need <= len then return end
  local target = need + math.max(32, math.floor(len / 8))
  redis.call('SET', KEYS[k], (redis.call('GET', KEYS[k]) or '') .. string.rep('\0', target - len))
end
-- How many entries a view holds (found once per view and batch, then counted here).
local entries = {}
local function used(k, w)
  if not entries[k] then entries[k] = view_length(KEYS[k], w) end
  return entries[k]
end
local ops = cjson.decode(ARGV[5])
for _, op in ipairs(ops) do
  local command, k = op[1], tonumber(op[2])
  if command == 'SETRANGE' then
    local value = take(tonumber(op[4]))
    room(k, tonumber(op[3]) + #value)
    redis.call('SETRANGE', KEYS[k], op[3], value)
  elseif command == 'RPUSHBIN' then redis.call('RPUSH', KEYS[k], take(tonumber(op[4])))
  elseif command == 'VIEWBIN' then
    local entry = take(tonumber(op[4]))
    local n = used(k, #entry)
    room(k, (n + 1) * #entry)
    redis.call('SETRANGE', KEYS[k], n * #entry, entry)
    entries[k] = n + 1
  elseif command == 'SET' then redis.call('SET', KEYS[k], op[4])
  else redis.call(command, KEYS[k], op[3], op[4]) end
end
redis.call('SET', KEYS[2], ARGV[3])
return #ids
