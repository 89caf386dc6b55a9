-- token_revoke_one.lua: delete one token, or (mode 'family') its whole refresh family.
-- KEYS[1]  token key
-- ARGV[1]  app tag prefix        ARGV[2]  mode: one | family
-- Derived keys (the token's grant or installation token set and the token keys it holds):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns how many tokens were deleted (0 if unknown).

-- include: validity

local t = read_token(KEYS[1])
if t == nil then return 0 end
if ARGV[2] == 'family' and t.family ~= '' then
  return revoke_family(ARGV[1], t.grant_id, t.family) + redis.call('DEL', KEYS[1])
end
local set_key = ARGV[1] .. ':toks:' .. t.grant_id
redis.call('ZREM', set_key, member_of(ARGV[1], KEYS[1]))
if redis.call('ZCARD', set_key) == 0 then redis.call('DEL', set_key) end
return redis.call('DEL', KEYS[1])
