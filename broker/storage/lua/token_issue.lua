-- token_issue.lua: write the tokens of one response, optionally consuming a code or rotating a
-- refresh token in the same script.
-- KEYS[1]  consumed key: the code or the old refresh token (mode none: the access token key)
-- KEYS[2]  grant_tokens set      KEYS[3]  token family set
-- KEYS[4]  access token key      KEYS[5]  refresh token key (ignored unless ARGV[6] == '1')
-- ARGV[1]  app tag prefix        ARGV[2]  now               ARGV[3]  mode: none | code | refresh
-- ARGV[4]  access expiry         ARGV[5]  refresh expiry    ARGV[6]  '1' with a refresh token
-- ARGV[7]  code tombstone ttl    ARGV[8]  refresh reuse grace seconds
-- ARGV[9]  refresh mode: the new pair, sealed for the grace window ('' for none)
-- ARGV[10..] field pairs common to both tokens (family included)
-- Derived keys (the app, the grant or installation, the family or grant set to revoke on a replay
--   or a reuse, the new pair a grace retry checks, kept as grace_rt and grace_at):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns 'ok', 'grace <sealed pair>' (a retry within the grace window while the pair the first
-- rotation issued is untouched: that pair, nothing written), or the refusal: 'replayed' | 'reused' |
-- 'expired' | 'revoked'.

-- include: validity

local prefix, now, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local fields = {}
for i = 10, #ARGV do table.insert(fields, ARGV[i]) end
local t = to_table(fields)
if mode == 'code' then
  local c = redis.call('HMGET', KEYS[1], 'used', 'family')
  if c[1] == '1' then
    redis.call('HSET', KEYS[1], 'replayed', '1')
    if c[2] then revoke_set(prefix .. ':fam:' .. c[2]) end
    return 'replayed'
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
elseif mode == 'refresh' then
  local r = to_table(redis.call('HGETALL', KEYS[1]))
  if r.expires_at == nil or tonumber(r.expires_at) <= now then return 'expired' end
  if r.rotated_at and r.rotated_at ~= '' then
    if now - tonumber(r.rotated_at) > tonumber(ARGV[8]) or tonumber(ARGV[8]) == 0 then
      revoke_set(prefix .. ':gtok:' .. r.grant_id)
      return 'reused'
    end
  end
end
local to = t
to.expires_at = ARGV[4]
if token_is_valid(to, prefix, now) == false then return 'revoked' end
if mode == 'refresh' then
  local g = redis.call('HMGET', KEYS[1], 'grace_box', 'grace_rt', 'grace_at')
  if g[1] and g[1] ~= '' then
    -- The pair of the first rotation, while it is untouched. Once its refresh token was used or
    -- either token revoked, the client had that pair: this is reuse, not a lost response.
    local fresh = g[2] and g[3] and redis.call('EXISTS', g[3]) == 1
      and redis.call('HEXISTS', g[2], 'rotated_at') == 0 and redis.call('EXISTS', g[2]) == 1
    if not fresh then
      revoke_set(prefix .. ':gtok:' .. t.grant_id)
      return 'reused'
    end
    return 'grace ' .. g[1]
  end
end
if mode == 'code' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'used', '1', 'family', t.family)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
elseif mode == 'refresh' then
  if redis.call('HGET', KEYS[1], 'rotated_at') == false then
    redis.call('HSET', KEYS[1], 'rotated_at', ARGV[2])
    if ARGV[9] ~= '' then
      redis.call('HSET', KEYS[1], 'grace_box', ARGV[9], 'grace_rt', KEYS[5], 'grace_at', KEYS[4])
    end
  end
end
local function put(key, exp)
  redis.call('HSET', key, unpack(fields))
  redis.call('HSET', key, 'expires_at', exp)
  redis.call('EXPIREAT', key, tonumber(exp))
  for i = 2, 3 do
    redis.call('SADD', KEYS[i], key)
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 or now + ttl < tonumber(exp) then redis.call('EXPIREAT', KEYS[i], tonumber(exp)) end
  end
end
put(KEYS[4], ARGV[4])
if ARGV[6] == '1' then put(KEYS[5], ARGV[5]) end
return 'ok'
