-- token_lookup.lua: a token's fields plus effective_scopes, if the token is valid right now.
-- KEYS[1]  token key (access or refresh token hash)
-- ARGV[1]  app tag prefix, b:{a:<client_id>}
-- ARGV[2]  now (unix seconds)
-- Derived keys (the app, the grant or installation):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns the token hash as a flat list with effective_scopes appended, or nil.

-- include: validity

local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return nil end
local t = to_table(flat)
local owner_scopes = token_is_valid(t, ARGV[1], tonumber(ARGV[2]))
if owner_scopes == false then return nil end
table.insert(flat, 'effective_scopes')
table.insert(flat, intersect(t.scopes or '', owner_scopes))
return flat
