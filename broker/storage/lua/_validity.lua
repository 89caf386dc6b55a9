-- _validity.lua: the token validity rule and the helpers the token scripts and the gate share.
-- A fragment, not a script: the loader replaces a line "-- include: validity" with this file.
-- KEYS: none of its own (the functions take keys from the including script).
-- ARGV: none of its own.
-- Derived keys: prefix .. ':app', prefix .. ':grant:' .. subject, prefix .. ':inst:' .. subject
--   (the token's owner) and token keys (prefix is the app's tag b:{a:<client_id>}): all carry the
--   hash tag of the including script's KEYS[1] (a key of the same app), so it stays in one slot.
--
-- Token value (docs/data-model.md "Tokens"): one string, fields joined by '|' in TOKEN_FIELDS order,
--   kind written as g (grant) or i (installation), trailing empty fields left out. No field can hold
--   a '|' (ids, scope tokens, digits, base64url, key names).
-- read_token(key): the token as a table of TOKEN_FIELDS (missing ones ''), or nil.
-- encode_token(t): the stored string of such a table.
-- owner_key(prefix, t): the token's grant or installation hash.
-- token_is_valid(t, prefix, now): the owner's current scopes, or false and the reason. A token is
--   valid while it has not expired, its app is active, its grant or installation still has the id
--   it was issued under and the generation (``gen``) it was issued in, (installations) is enabled,
--   and (refresh chains) its family is not among the owner's revoked families (``rf``).
-- to_table(flat): HGETALL reply -> table. intersect(a, b): space-separated scopes in both.
-- No token set: revoking every token of an owner is one HINCRBY of its generation, revoking a
--   chain one word in its ``rf``; the revoked tokens' keys stay, unusable, until they expire.
-- revoke_owner(key, id): new generation for the owner if it still has that id; returns 1 or 0.
-- revoke_family(prefix, subject, grant_id, family): the chain's tokens stop working (the grant
--   keeps at most MAX_REVOKED_FAMILIES of them; one more starts a new generation instead).

local TOKEN_FIELDS = {'kind', 'subject', 'grant_id', 'scopes', 'issued_at', 'expires_at', 'family',
  'auth_time', 'rotated_at', 'grace_box', 'grace_rt', 'grace_at', 'gen'}
local MAX_REVOKED_FAMILIES = 4  -- 13 bytes each: the grant's hash keeps its compact encoding
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
local function owner_key(prefix, t)
  if t.kind == 'grant' then return prefix .. ':grant:' .. t.subject end
  if t.kind == 'installation' then return prefix .. ':inst:' .. t.subject end
  return nil
end
-- Returns the owner's current scopes, or false and the reason.
local function token_is_valid(t, prefix, now)
  if t.expires_at == nil or t.expires_at == '' or tonumber(t.expires_at) <= now then
    return false, 'expired'
  end
  if redis.call('HGET', prefix .. ':app', 'status') ~= 'active' then return false, 'app_suspended' end
  local owner = owner_key(prefix, t)
  if owner == nil then return false, 'unknown_kind' end
  local o = redis.call('HMGET', owner, 'id', 'enabled', 'scopes', 'gen', 'rf')
  if o[1] ~= t.grant_id or (o[4] or '') ~= (t.gen or '') then return false, t.kind .. '_revoked' end
  if t.kind == 'installation' and o[2] ~= '1' then return false, 'installation_disabled' end
  if t.family ~= '' and o[5] and string.find(o[5], ' ' .. t.family .. ' ', 1, true) then
    return false, t.kind .. '_revoked'
  end
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
local function revoke_owner(key, id)
  if id == nil or id == '' or redis.call('HGET', key, 'id') ~= id then return 0 end
  redis.call('HINCRBY', key, 'gen', 1)
  redis.call('HDEL', key, 'rf')
  return 1
end
local function revoke_family(prefix, subject, grant_id, family)
  if family == nil or family == '' or subject == nil or subject == '' then return 0 end
  local key = prefix .. ':grant:' .. subject
  if grant_id == nil or grant_id == '' or redis.call('HGET', key, 'id') ~= grant_id then return 0 end
  local revoked = redis.call('HGET', key, 'rf') or ' '
  if string.find(revoked, ' ' .. family .. ' ', 1, true) then return 0 end
  local _, count = string.gsub(revoked, '%S+', '')
  if count >= MAX_REVOKED_FAMILIES then return revoke_owner(key, grant_id) end
  redis.call('HSET', key, 'rf', revoked .. family .. ' ')
  return 1
end
