-- _fields.lua: which fields a token's request releases: the one rule the gate applies and the
-- explain view reports (broker/gate/explain.py), so an explanation can never differ from a decision.
-- A fragment, not a script: the loader replaces a line "-- include: fields" with this file.
-- KEYS: none of its own.
-- ARGV: none of its own.
-- Derived keys: none.
-- released_fields(scope_fields, wanted, owner_scopes, ticked): the scopes both the request
--   (``wanted``, space-separated) and the grant or installation (``owner_scopes``) hold, and the
--   sorted list of the shareable fields those scopes reach (``scope_fields``: scope -> fields), kept
--   to the fields the person ticked when ``ticked`` is a set (a grant), all of them when nil (an
--   installation).

local function released_fields(scope_fields, wanted, owner_scopes, ticked)
  local allowed_scopes = {}
  for s in string.gmatch(intersect(wanted or '', owner_scopes or ''), '%S+') do allowed_scopes[s] = true end
  local field_set = {}
  for s in pairs(allowed_scopes) do
    local fs = scope_fields[s]
    if fs then for _, f in ipairs(fs) do
      if ticked == nil or ticked[f] then field_set[f] = true end
    end end
  end
  local field_list = {}
  for f in pairs(field_set) do table.insert(field_list, f) end
  table.sort(field_list)
  return allowed_scopes, field_list
end
