-- _validity.lua: the token validity rule and the helpers the token scripts and the gate share.
-- A fragment, not a script: the loader replaces a line "-- include: validity" with this file.
-- KEYS: none of its own (the functions take keys from the including script).
-- ARGV: none of its own.
-- Derived keys: prefix .. ':app', prefix .. ':grant:' .. subject, prefix .. ':inst:' .. subject,
--   prefix .. ':toks:' .. grant_id (a grant's or installation's token set) and the token keys it
--   holds (prefix is the app's tag b:{a:<client_id>}): all carry the hash tag of the including
--   script's KEYS[1] (a key of the same app), so it stays in one slot.
--
-- Token value (docs/data-model.md "Tokens"): one string, fields joined by '|' in TOKEN_FIELDS order,
--   kind written as g (grant) or i (installation), trailing empty fields left out. No field can hold
--   a '|' (ids, scope tokens, digits, base64url, key names).
-- read_token(key): the token as a table of TOKEN_FIELDS (missing ones ''), or nil.
-- encode_token(t): the stored string of such a table.
-- token_is_valid(t, prefix, now): the owner's current scopes, or false and the reason. A token is
--   valid while it has not expired, its app is active, its grant or installation still has the id
--   it was issued under and (installations) is enabled.
-- to_table(flat): HGETALL reply -> table. intersect(a, b): space-separated scopes in both.
-- Token sets: a sorted set per grant or installation, member = 'a' or 'r' then the key's hash
--   (member_of / member_key convert), score = the token's expiry.
-- index_token(set_key, member, exp, now): add a member, drop the expired ones, expire the set with
--   its longest-lived member.
-- revoke_set(set_key): delete every token in the set, then the set; returns how many.
-- revoke_family(prefix, grant_id, family): delete the tokens of one refresh chain; returns how many.

local TOKEN_FIELDS = {'kind', 'subject', 'grant_id', 'scopes', 'issued_at', 'expires_at', 'family',
  'auth_time', 'rotated_at', 'grace_box', 'grace_rt', 'grace_at'}
local KIND_CODE = {grant = 'g', installation = 'i'}
local KIND_NAME = {g = 'grant', i = 'installation'}

local function read_token(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local t, i = {}, 1
  for value in string.gmatch(raw .. '|', '([^|]*)|') do
    local name = TOKEN_FIELDS[i]
    if name == nil then break end
    t[name] = value
    i = i + 1
  end
  for j = i, #TOKEN_FIELDS do t[TOKEN_FIELDS[j]] = '' end
  t.kind = KIND_NAME[t.kind] or t.kind
  return t
end
local function encode_token(t)
  local out, last = {}, 0
  for i, name in ipairs(TOKEN_FIELDS) do
    local value = t[name] or ''
    if name == 'kind' then value = KIND_CODE[value] or value end
    out[i] = tostring(value)
    if out[i] ~= '' then last = i end
  end
  return table.concat(out, '|', 1, last)
end
-- Returns the owner's current scopes, or false and the reason.
local function token_is_valid(t, prefix, now)
  if t.expires_at == nil or t.expires_at == '' or tonumber(t.expires_at) <= now then
    return false, 'expired'
  end
  if redis.call('HGET', prefix .. ':app', 'status') ~= 'active' then return false, 'app_suspended' end
  local owner
  if t.kind == 'grant' then owner = prefix .. ':grant:' .. t.subject
  elseif t.kind == 'installation' then owner = prefix .. ':inst:' .. t.subject
  else return false, 'unknown_kind' end
  local o = redis.call('HMGET', owner, 'id', 'enabled', 'scopes')
  if o[1] ~= t.grant_id then return false, t.kind .. '_revoked' end
  if t.kind == 'installation' and o[2] ~= '1' then return false, 'installation_disabled' end
  return o[3] or ''
end
local function to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local function intersect(a, b)
  local allowed = {}
  for s in string.gmatch(b, '%S+') do allowed[s] = true end
  local out = {}
  for s in string.gmatch(a, '%S+') do if allowed[s] then table.insert(out, s) end end
  return table.concat(out, ' ')
end
-- '<prefix>:at:<hash>' <-> 'a<hash>', '<prefix>:rt:<hash>' <-> 'r<hash>'
local function member_of(prefix, key)
  local rest = string.sub(key, #prefix + 2)
  return string.sub(rest, 1, 1) .. string.sub(rest, 4)
end
local function member_key(prefix, member)
  return prefix .. ':' .. string.sub(member, 1, 1) .. 't:' .. string.sub(member, 2)
end
local function index_token(set_key, member, exp, now)
  redis.call('ZREMRANGEBYSCORE', set_key, '-inf', now)
  redis.call('ZADD', set_key, exp, member)
  local top = redis.call('ZRANGE', set_key, -1, -1, 'WITHSCORES')
  redis.call('EXPIREAT', set_key, tonumber(top[2]))
end
local function revoke_set(set_key)
  local prefix = string.match(set_key, '^(.-):toks:')
  local members = redis.call('ZRANGE', set_key, 0, -1)
  local n = 0
  for _, m in ipairs(members) do n = n + redis.call('DEL', member_key(prefix, m)) end
  redis.call('DEL', set_key)
  return n
end
local function revoke_family(prefix, grant_id, family)
  if family == nil or family == '' or grant_id == nil or grant_id == '' then return 0 end
  local set_key = prefix .. ':toks:' .. grant_id
  local n = 0
  for _, m in ipairs(redis.call('ZRANGE', set_key, 0, -1)) do
    local key = member_key(prefix, m)
    local t = read_token(key)
    if t == nil or t.family == family then
      n = n + redis.call('DEL', key)
      redis.call('ZREM', set_key, m)
    end
  end
  if redis.call('ZCARD', set_key) == 0 then redis.call('DEL', set_key) end
  return n
end
