-- token_revoke_one.lua: delete one token, or (mode 'family') stop its whole refresh family.
-- KEYS[1]  token key
-- ARGV[1]  app tag prefix        ARGV[2]  mode: one | family
-- Derived keys (the token's grant, whose revoked families the chain joins):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns how many tokens were deleted or chains revoked (0 if unknown).

-- include: validity

local t = read_token(KEYS[1])
if t == nil then return 0 end
if ARGV[2] == 'family' and t.family ~= '' and t.kind == 'grant' then
  return revoke_family(ARGV[1], t.subject, t.grant_id, t.family) + redis.call('DEL', KEYS[1])
end
return redis.call('DEL', KEYS[1])
