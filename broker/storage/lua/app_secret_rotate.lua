-- app_secret_rotate.lua: retire every live client secret (expires = now + overlap), forget expired
-- ones and add the new one. Only the app's secrets hash is touched.
-- KEYS[1]  the app's secrets hash
-- ARGV[1]  now                   ARGV[2]  retire at (now + overlap)
-- ARGV[3]  the new secret's keyed hash                 ARGV[4]  its entry (JSON)
-- Returns 1.

local now = tonumber(ARGV[1])
local retire_at = tonumber(ARGV[2])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local meta = cjson.decode(entries[i + 1])
  local expires = meta['expires']
  if expires == nil or expires == cjson.null then
    meta['expires'] = retire_at
    redis.call('HSET', KEYS[1], entries[i], cjson.encode(meta))
  elseif tonumber(expires) <= now then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
return 1
