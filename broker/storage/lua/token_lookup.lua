-- token_lookup.lua: a token's fields plus effective_scopes, if the token is valid right now.
-- KEYS[1]  token key (access or refresh token)
-- ARGV[1]  app tag prefix, b:{a:<client_id>}
-- ARGV[2]  now (unix seconds)
-- Derived keys (the app, the grant or installation):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns the token's non-empty fields as a flat list (name, value, ...) with effective_scopes
-- appended, or nil. One key read and the owner's state: introspection's single round trip.

-- include: validity

local t = read_token(KEYS[1])
if t == nil then return nil end
local owner_scopes = token_is_valid(t, ARGV[1], tonumber(ARGV[2]))
if owner_scopes == false then return nil end
local flat = {}
for _, name in ipairs(TOKEN_FIELDS) do
  if t[name] ~= '' and string.sub(name, 1, 6) ~= 'grace_' and name ~= 'gen' then
    table.insert(flat, name)
    table.insert(flat, t[name])
  end
end
table.insert(flat, 'effective_scopes')
table.insert(flat, intersect(t.scopes, owner_scopes))
return flat
