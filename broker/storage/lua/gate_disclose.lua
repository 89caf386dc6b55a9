-- gate_disclose.lua: the disclosure gate's one round trip (broker.gate.disclosure). The token rule
-- of _validity.lua, then tenant isolation, the field allow-list and the journal append.
-- KEYS[1]  access token key      KEYS[2]  app key
-- ARGV[1]  app tag prefix        ARGV[2]  now              ARGV[3]  wanted token kind
-- ARGV[4]  org in the path       ARGV[5]  scope -> shareable fields (JSON)
-- ARGV[6]  required scope        ARGV[7]  record template (JSON)
-- ARGV[8]  persons (JSON list of [user id, pairwise id])
-- ARGV[9]  number of ledger logs (a person's records go to log sha1(person)[:8] % n, broker.ledger.logs)
-- ARGV[10] the client id
-- The logs' journals indexes live in the logs' slots (keys.ledger_tag), not this one: the script
-- marks each journal it writes announced (SET NX with a TTL) and returns the logs whose mark was
-- absent; only for those does the gate add the app to the index afterwards (the common case stays
-- one round trip; a gate that dies in between leaves it to the sequencer's sweep).
-- Derived keys (the grant or installation, the pairwise map prefix .. ':pw:' .. org or '-', the
--   journals prefix .. ':journal:' .. log and their marks): all carry the hash tag of KEYS[1] (the
--   app's, b:{a:<client_id>}), so the script stays in one slot on a cluster.
-- Returns {'ok', kind, subject, grant_id, fields_json, logs to announce (JSON)} or {error, detail...}
-- (error: invalid_token, wrong_kind, not_found, insufficient_scope).

-- include: validity
-- include: fields

local tag = ARGV[1]
local now = tonumber(ARGV[2])
local want_kind = ARGV[3]
local want_org = ARGV[4]
local scope_fields = cjson.decode(ARGV[5])
local required_scope = ARGV[6]
local template = cjson.decode(ARGV[7])
local persons = cjson.decode(ARGV[8])
local reasons = {
  expired = 'The access token has expired',
  app_suspended = 'The app is suspended',
  grant_revoked = 'The grant behind this token was revoked',
  installation_revoked = 'The installation behind this token was removed',
  installation_disabled = 'The organization has switched this app off',
  unknown_kind = 'The access token is unknown, expired or revoked',
}

local tok = read_token(KEYS[1])
if tok == nil then return {'invalid_token', 'The access token is unknown, expired or revoked'} end
local owner_scopes, reason = token_is_valid(tok, tag, now)
if owner_scopes == false then return {'invalid_token', reasons[reason]} end
-- A valid token of the other kind is not bad credentials (refreshing it would not help): it lacks
-- the right to this endpoint, RFC 6750 3.1 insufficient_scope (403).
if tok.kind ~= want_kind then
  if want_kind == 'installation' then
    return {'wrong_kind', 'This endpoint needs an organization token (client_credentials with org_id)'}
  end
  return {'wrong_kind', 'This endpoint needs a token issued to a person (authorization code flow)'}
end
if tok.kind == 'installation' and tok.subject ~= want_org then return {'not_found', 'Not found'} end

-- The fields the person ticked (a grant) or the admin chose (an installation; one stored without a
-- choice releases every field of its scopes).
local ticked = nil
local owner_key = (tok.kind == 'grant') and (tag .. ':grant:' .. tok.subject) or (tag .. ':inst:' .. tok.subject)
local chosen = redis.call('HGET', owner_key, 'fields')
if chosen or tok.kind == 'grant' then
  ticked = {}
  for f in string.gmatch(chosen or '', '%S+') do ticked[f] = true end
end
local allowed_scopes, field_list = released_fields(scope_fields, tok.scopes, owner_scopes, ticked)
if not allowed_scopes[required_scope] then
  return {'insufficient_scope', required_scope, tok.kind, tok.subject}
end

if tok.kind == 'grant' then persons = {{tok.subject, ''}} end
local pairwise_map = tag .. ':pw:' .. (tok.kind == 'grant' and '-' or tok.subject)
local developer = redis.call('HGET', KEYS[2], 'developer_id') or ''
local logs = tonumber(ARGV[9])
local client_id = ARGV[10]
local announce = {}
local seen = {}
for i, p in ipairs(persons) do
  template.id = template.request_id .. '-' .. i
  template.person = p[1]
  template.grant = tok.grant_id
  template.org = (tok.kind == 'installation') and tok.subject or cjson.null
  template.audience = (tok.kind == 'installation') and 'organization' or 'individual'
  template.developer = developer
  template.fields = field_list
  local log = string.format('%02d', tonumber(string.sub(redis.sha1hex(p[1]), 1, 8), 16) % logs)
  local journal = tag .. ':journal:' .. log
  redis.call('XADD', journal, '*', 'r', cjson.encode(template))
  if not seen[log] then
    seen[log] = true
    if redis.call('SET', journal .. ':ann', '1', 'NX', 'EX', 60) then
      table.insert(announce, log)
    end
  end
  if p[2] ~= '' then redis.call('HSET', pairwise_map, p[2], p[1]) end
end
return {'ok', tok.kind, tok.subject, tok.grant_id, cjson.encode(field_list), cjson.encode(announce)}
