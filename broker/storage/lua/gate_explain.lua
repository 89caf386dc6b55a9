-- gate_explain.lua: what the gate would release to an app about one person (a grant) or one
-- organization's members (an installation), and the facts behind it, without writing anything.
-- The released fields come from released_fields (_fields.lua), the very rule gate_disclose.lua
-- applies, for a request carrying every scope the app registered.
-- KEYS[1]  the app key            KEYS[2]  the grant or installation key
-- ARGV[1]  scope -> shareable fields (JSON)    ARGV[2]  grant | installation
-- Derived keys: none (the included validity helpers are not called); KEYS[2] is a key of the same
-- app, so both keys carry the hash tag of KEYS[1] and the script stays in one slot.
-- Returns a JSON object: app_status, app_scopes, owner (present), enabled, owner_scopes, ticked
-- (grants), released_scopes, released_fields.

-- include: validity
-- include: fields

local scope_fields = cjson.decode(ARGV[1])
local kind = ARGV[2]
local app = redis.call('HMGET', KEYS[1], 'status', 'scopes')
local owner = redis.call('HMGET', KEYS[2], 'id', 'scopes', 'fields', 'enabled')
local out = {
  app_status = app[1] or '',
  app_scopes = app[2] or '',
  owner = owner[1] ~= false and owner[1] ~= nil,
  owner_scopes = owner[2] or '',
  ticked = owner[3] or '',  -- a grant's ticked fields, an installation's chosen ones (absent: all)
  enabled = kind ~= 'installation' or owner[4] == '1',
}
local ticked = nil
if kind == 'grant' or owner[3] then
  ticked = {}
  for f in string.gmatch(out.ticked, '%S+') do ticked[f] = true end
end
local released_scopes, fields = {}, {}
if out.owner and out.enabled and out.app_status == 'active' then
  local allowed
  allowed, fields = released_fields(scope_fields, out.app_scopes, out.owner_scopes, ticked)
  for s in pairs(allowed) do table.insert(released_scopes, s) end
  table.sort(released_scopes)
end
out.released_scopes = released_scopes
out.released_fields = fields
return cjson.encode(out)
