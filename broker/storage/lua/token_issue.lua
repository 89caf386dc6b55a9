-- token_issue.lua: write the tokens of one response, optionally consuming a code or rotating a
-- refresh token in the same script.
-- KEYS[1]  consumed key: the code or the old refresh token; mode installation: the installation;
--          mode none: the access token key
-- KEYS[2]  the token's owner: the grant's or the installation's hash (its generation is written
--          into the tokens; a reused refresh token starts a new one)
-- KEYS[3]  access token key      KEYS[4]  refresh token key (ignored unless ARGV[6] == '1')
-- ARGV[1]  app tag prefix        ARGV[2]  now
-- ARGV[3]  mode: none | code | refresh | installation (an organization token: the installation's
--          checks and scopes are read here, ARGV[12] is ignored and ARGV[13] holds the requested
--          scopes, '' for every scope the installation grants)
-- ARGV[4]  access expiry         ARGV[5]  refresh expiry    ARGV[6]  '1' with a refresh token
-- ARGV[7]  code tombstone ttl    ARGV[8]  refresh reuse grace seconds
-- ARGV[9]  refresh mode: the new pair, sealed for the grace window ('' for none)
-- ARGV[10] kind (grant | installation)    ARGV[11] subject       ARGV[12] grant or installation id
-- ARGV[13] scopes                ARGV[14] family ('' for none)      ARGV[15] auth_time ('' for none)
-- Derived keys (the app, the grant or installation, the new pair a grace retry checks, kept as
--   grace_rt and grace_at):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns 'ok' (mode installation: 'ok <scopes issued>'), 'grace <sealed pair>' (a retry within the
-- grace window while the pair the first rotation issued is untouched: that pair, nothing written),
-- or the refusal: 'replayed' | 'reused' | 'expired' | 'revoked' | 'not_installed' | 'disabled' |
-- 'no_scopes' | 'invalid_scope <scopes the installation does not grant>'.

-- include: validity

local prefix, now, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local t = {kind = ARGV[10], subject = ARGV[11], grant_id = ARGV[12], scopes = ARGV[13],
  issued_at = ARGV[2], expires_at = ARGV[4], family = ARGV[14], auth_time = ARGV[15]}
local used = nil
if mode == 'installation' then
  local inst = redis.call('HMGET', KEYS[1], 'id', 'enabled', 'scopes')
  if not inst[1] then return 'not_installed' end
  if inst[2] ~= '1' then return 'disabled' end
  local granted, all = {}, {}
  for s in string.gmatch(inst[3] or '', '%S+') do granted[s] = true; table.insert(all, s) end
  if t.scopes ~= '' then
    local refused = {}
    for s in string.gmatch(t.scopes, '%S+') do if not granted[s] then table.insert(refused, s) end end
    if #refused > 0 then return 'invalid_scope ' .. table.concat(refused, ' ') end
  else
    table.sort(all)
    t.scopes = table.concat(all, ' ')
  end
  if t.scopes == '' then return 'no_scopes' end
  t.grant_id = inst[1]
elseif mode == 'code' then
  local c = redis.call('HMGET', KEYS[1], 'used', 'family', 'grant_id', 'subject')
  if c[1] == '1' then
    redis.call('HSET', KEYS[1], 'replayed', '1')
    revoke_family(prefix, c[4], c[3], c[2])
    return 'replayed'
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
elseif mode == 'refresh' then
  used = read_token(KEYS[1])
  if used == nil or used.expires_at == '' or tonumber(used.expires_at) <= now then return 'expired' end
  if token_is_valid(used, prefix, now) == false then return 'revoked' end  -- its generation ended
  if used.rotated_at ~= '' then
    if now - tonumber(used.rotated_at) > tonumber(ARGV[8]) or tonumber(ARGV[8]) == 0 then
      revoke_owner(owner_key(prefix, used), used.grant_id)
      return 'reused'
    end
  end
end
t.gen = redis.call('HGET', KEYS[2], 'gen') or ''
-- the owner's checks only (now = 0): a new token's own expiry was set by the caller, and a lifetime
-- of a second may have passed on a busy machine before this runs
if token_is_valid(t, prefix, 0) == false then return 'revoked' end
if mode == 'refresh' and used.grace_box ~= '' then
  -- The pair of the first rotation, while it is untouched. Once its refresh token was used or
  -- either token revoked, the client had that pair: this is reuse, not a lost response.
  local pair_rt = used.grace_rt ~= '' and read_token(used.grace_rt)
  local fresh = pair_rt and pair_rt.rotated_at == '' and redis.call('EXISTS', used.grace_at) == 1
  if not fresh then
    revoke_owner(KEYS[2], t.grant_id)
    return 'reused'
  end
  return 'grace ' .. used.grace_box
end
if mode == 'code' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'used', '1', 'family', t.family, 'grant_id', t.grant_id, 'subject', t.subject)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
elseif mode == 'refresh' and used.rotated_at == '' then
  used.rotated_at = ARGV[2]
  if ARGV[9] ~= '' then
    used.grace_box, used.grace_rt, used.grace_at = ARGV[9], KEYS[4], KEYS[3]
  end
  redis.call('SET', KEYS[1], encode_token(used), 'KEEPTTL')
end
local function put(key, exp)
  t.expires_at = exp
  redis.call('SET', key, encode_token(t))
  redis.call('EXPIREAT', key, tonumber(exp))
end
put(KEYS[3], ARGV[4])
if ARGV[6] == '1' then put(KEYS[4], ARGV[5]) end
if mode == 'installation' then return 'ok ' .. t.scopes end
return 'ok'
