-- app_secret_revoke_previous.lua: end every retiring client secret now (a leaked secret must not
-- keep working for the rotation overlap); the current secret (no expiry) stays.
-- KEYS[1]  the app's secrets hash
-- Returns the number of secrets removed that were still valid at ARGV[1].
-- ARGV[1]  now (unix seconds)

local now = tonumber(ARGV[1])
local live = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local meta = cjson.decode(entries[i + 1])
  local expires = meta['expires']
  if expires ~= nil and expires ~= cjson.null then
    if tonumber(expires) > now then
      live = live + 1
    end
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return live
