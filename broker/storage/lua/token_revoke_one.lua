-- token_revoke_one.lua: delete one token, or (mode 'family') its whole refresh family.
-- KEYS[1]  token key
-- ARGV[1]  app tag prefix        ARGV[2]  mode: one | family
-- Derived keys (the family set and the token keys it holds):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns how many tokens were deleted (0 if unknown).

-- include: validity

local t = to_table(redis.call('HGETALL', KEYS[1]))
if t.client_id == nil then return 0 end
if ARGV[2] == 'family' and t.family then return revoke_set(ARGV[1] .. ':fam:' .. t.family) end
redis.call('DEL', KEYS[1])
return 1
