-- _validity.lua: the token validity rule and the helpers the token scripts and the gate share.
-- A fragment, not a script: the loader replaces a line "-- include: validity" with this file.
-- KEYS: none of its own (the functions take keys from the including script).
-- ARGV: none of its own.
-- Derived keys: prefix .. ':app', prefix .. ':grant:' .. subject, prefix .. ':inst:' .. subject
--   (prefix is the app's tag b:{a:<client_id>}) and the token keys held in a token set: all carry
--   the hash tag of the including script's KEYS[1] (a key of the same app), so it stays in one slot.
--
-- token_is_valid(t, prefix, now): the owner's current scopes, or false and the reason. A token is
--   valid while it has not expired, its app is active, its grant or installation still has the id
--   it was issued under and (installations) is enabled.
-- to_table(flat): HGETALL reply -> table. intersect(a, b): space-separated scopes in both.
-- revoke_set(set_key): delete every key listed in the set, then the set; returns how many.

-- Returns the owner's current scopes, or false and the reason.
local function token_is_valid(t, prefix, now)
  if t.expires_at == nil or tonumber(t.expires_at) <= now then return false, 'expired' end
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
local function revoke_set(set_key)
  local members = redis.call('SMEMBERS', set_key)
  for _, k in ipairs(members) do redis.call('DEL', k) end
  redis.call('DEL', set_key)
  return #members
end
