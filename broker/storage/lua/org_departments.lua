-- org_departments.lua: change an organization's department tree, its members' departments or an
-- installation's departments, and keep every department-limited installation's coverage set in
-- step, in one step.
-- KEYS[1]  departments (hash)          KEYS[2]  member -> departments (hash)
-- KEYS[3]  members (zset, join seq)    KEYS[4]  coverage config (hash client -> departments)
-- KEYS[5]  roles (hash)                KEYS[6..5+n]  coverage sets of the clients in ARGV
--          (all in {o:<org_id>}; no key is built here)
-- Derived keys: none; the coverage sets are KEYS[6..] held in a table (cov_key), all with the
--   hash tag of KEYS[1].
-- ARGV[1]  operation   ARGV[2]  n   ARGV[3..2+n]  client ids (KEYS[5+i] is client i's coverage set;
--          every client in the coverage config must be listed, else 'stale' and nothing changes)
-- ARGV[3+n..]  the operation's arguments:
--   create  id name parent max_count max_depth      rename  id name
--   move    id parent max_depth                     delete  id
--   assign  user_id departments (space-separated; empty = none)
--   join    user_id department max_per_member       leave   user_id department
--   limit   client_id departments                   unlimit client_id
--   drop_client client_id (the installation is gone)   remove_member user_id
-- Returns {'ok', client, added, removed, ...} (user ids space-separated, one triple per client whose
-- covered members changed; for remove_member the clients that covered the member) or {error code}.

local op = ARGV[1]
local n = tonumber(ARGV[2])
local clients, cov_key = {}, {}
for i = 1, n do
  clients[i] = ARGV[2 + i]
  cov_key[ARGV[2 + i]] = KEYS[5 + i]
end
local args = {}
for i = 3 + n, #ARGV do args[#args + 1] = ARGV[i] end

for _, configured in ipairs(redis.call('HKEYS', KEYS[4])) do
  if not cov_key[configured] then return {'stale'} end
end

local function words(text)
  local out = {}
  for w in string.gmatch(text or '', '%S+') do out[#out + 1] = w end
  return out
end

local function tree()
  local parent, flat = {}, redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do parent[flat[i]] = cjson.decode(flat[i + 1]).parent or '' end
  return parent
end

-- Depth of a department (1 = top level), or a huge number for a broken chain.
local function depth(parent, id)
  local d, cur = 0, id
  while cur ~= '' do
    d = d + 1
    if d > 1000 then return d end
    cur = parent[cur]
    if cur == nil then return 1001 end
  end
  return d
end

-- Departments covered by a choice: the chosen ones and everything below them.
local function covered_departments(parent, chosen_text)
  local chosen, out = {}, {}
  for _, d in ipairs(words(chosen_text)) do chosen[d] = true end
  for d, _ in pairs(parent) do
    local cur, steps = d, 0
    while cur ~= '' and cur ~= nil and steps < 1000 do
      if chosen[cur] then out[d] = true break end
      cur = parent[cur]
      steps = steps + 1
    end
  end
  return out
end

local function in_any(deps_text, covered)
  for _, d in ipairs(words(deps_text)) do
    if covered[d] then return true end
  end
  return false
end

local function zset_members(key)
  local out = {}
  for _, uid in ipairs(redis.call('ZRANGE', key, 0, -1)) do out[uid] = true end
  return out
end

local function write_set(key, old, new)
  local add, rem = {}, {}
  for uid, seq in pairs(new) do if not old[uid] then add[#add + 1] = seq add[#add + 1] = uid end end
  for uid, _ in pairs(old) do if not new[uid] then rem[#rem + 1] = uid end end
  for i = 1, #add, 1000 do redis.call('ZADD', key, unpack(add, i, math.min(i + 999, #add))) end
  for i = 1, #rem, 1000 do redis.call('ZREM', key, unpack(rem, i, math.min(i + 999, #rem))) end
end

local function diff(old, new)
  local add, rem = {}, {}
  for uid, _ in pairs(new) do if not old[uid] then add[#add + 1] = uid end end
  for uid, _ in pairs(old) do if not new[uid] then rem[#rem + 1] = uid end end
  table.sort(add)
  table.sort(rem)
  return table.concat(add, ' '), table.concat(rem, ' ')
end

-- Who a limited client covers now, from the tree and the members' departments (all members, or
-- only those in the list ``who`` when given).
local function coverage(parent, chosen_text, who)
  local covered, out = covered_departments(parent, chosen_text), {}
  if who then
    for _, uid in ipairs(who) do
      local deps = redis.call('HGET', KEYS[2], uid)
      if deps and in_any(deps, covered) then
        local seq = redis.call('ZSCORE', KEYS[3], uid)
        if seq then out[uid] = seq end
      end
    end
    return out
  end
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    if in_any(flat[i + 1], covered) then
      local seq = redis.call('ZSCORE', KEYS[3], flat[i])
      if seq then out[flat[i]] = seq end
    end
  end
  return out
end

local result = {'ok'}

-- Recompute every limited client's coverage of the members in ``who`` (a change elsewhere cannot
-- change anyone else's) and record the changes.
local function refresh(who)
  local parent = tree()
  for _, client in ipairs(clients) do
    local chosen = redis.call('HGET', KEYS[4], client)
    if chosen then
      local key = cov_key[client]
      local new = coverage(parent, chosen, who)
      local old = {}
      for _, uid in ipairs(who) do
        if redis.call('ZSCORE', key, uid) then old[uid] = true end
      end
      write_set(key, old, new)
      local added, removed = diff(old, new)
      if added ~= '' or removed ~= '' then
        result[#result + 1] = client
        result[#result + 1] = added
        result[#result + 1] = removed
      end
    end
  end
end

if op == 'create' then
  local id, name, parent_id = args[1], args[2], args[3]
  if redis.call('HLEN', KEYS[1]) >= tonumber(args[4]) then return {'too_many'} end
  if redis.call('HEXISTS', KEYS[1], id) == 1 then return {'exists'} end
  if parent_id ~= '' then
    if redis.call('HEXISTS', KEYS[1], parent_id) == 0 then return {'no_parent'} end
    if depth(tree(), parent_id) >= tonumber(args[5]) then return {'too_deep'} end
  end
  redis.call('HSET', KEYS[1], id, cjson.encode({name = name, parent = parent_id}))
  return result
end

if op == 'rename' then
  local raw = redis.call('HGET', KEYS[1], args[1])
  if not raw then return {'no_department'} end
  local record = cjson.decode(raw)
  redis.call('HSET', KEYS[1], args[1], cjson.encode({name = args[2], parent = record.parent or ''}))
  return result
end

if op == 'move' then
  local id, parent_id = args[1], args[2]
  local raw = redis.call('HGET', KEYS[1], id)
  if not raw then return {'no_department'} end
  local parent = tree()
  if parent_id ~= '' then
    if parent[parent_id] == nil then return {'no_parent'} end
    local cur, steps = parent_id, 0
    while cur ~= '' and cur ~= nil and steps < 1000 do
      if cur == id then return {'cycle'} end
      cur = parent[cur]
      steps = steps + 1
    end
    -- the moved subtree's own height counts too
    parent[id] = parent_id
    for d, _ in pairs(parent) do
      if depth(parent, d) > tonumber(args[3]) then return {'too_deep'} end
    end
  end
  local record = cjson.decode(raw)
  redis.call('HSET', KEYS[1], id, cjson.encode({name = record.name, parent = parent_id}))
  -- only members of the moved subtree can enter or leave anyone's coverage
  local subtree, who = covered_departments(tree(), id), {}
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    if in_any(flat[i + 1], subtree) then who[#who + 1] = flat[i] end
  end
  refresh(who)
  return result
end

if op == 'delete' then
  local id = args[1]
  local parent = tree()
  if parent[id] == nil then return {'no_department'} end
  for _, p in pairs(parent) do
    if p == id then return {'has_children'} end
  end
  redis.call('HDEL', KEYS[1], id)
  local flat, who = redis.call('HGETALL', KEYS[2]), {}
  for i = 1, #flat, 2 do
    local kept, dropped = {}, false
    for _, d in ipairs(words(flat[i + 1])) do
      if d == id then dropped = true else kept[#kept + 1] = d end
    end
    if dropped then
      who[#who + 1] = flat[i]  -- only its members can leave anyone's coverage
      if #kept == 0 then redis.call('HDEL', KEYS[2], flat[i])
      else redis.call('HSET', KEYS[2], flat[i], table.concat(kept, ' ')) end
    end
  end
  -- an installation limited to it keeps its other departments (or covers nobody: never the org)
  local config = redis.call('HGETALL', KEYS[4])
  for i = 1, #config, 2 do
    local kept = {}
    for _, d in ipairs(words(config[i + 1])) do if d ~= id then kept[#kept + 1] = d end end
    redis.call('HSET', KEYS[4], config[i], table.concat(kept, ' '))
  end
  refresh(who)
  return result
end

if op == 'assign' then
  local uid = args[1]
  if not redis.call('ZSCORE', KEYS[3], uid) then return {'not_member'} end
  local deps = words(args[2])
  for _, d in ipairs(deps) do
    if redis.call('HEXISTS', KEYS[1], d) == 0 then return {'no_department'} end
  end
  if #deps == 0 then redis.call('HDEL', KEYS[2], uid)
  else redis.call('HSET', KEYS[2], uid, table.concat(deps, ' ')) end
  refresh({uid})
  return result
end

if op == 'join' or op == 'leave' then
  local uid, dep = args[1], args[2]
  if not redis.call('ZSCORE', KEYS[3], uid) then return {'not_member'} end
  if redis.call('HEXISTS', KEYS[1], dep) == 0 then return {'no_department'} end
  local kept, present = {}, false
  for _, d in ipairs(words(redis.call('HGET', KEYS[2], uid))) do
    if d == dep then present = true end
    if d ~= dep or op == 'join' then kept[#kept + 1] = d end
  end
  if op == 'join' and not present then
    if #kept >= tonumber(args[3]) then return {'too_many_for_member'} end
    kept[#kept + 1] = dep
  end
  if #kept == 0 then redis.call('HDEL', KEYS[2], uid)
  else redis.call('HSET', KEYS[2], uid, table.concat(kept, ' ')) end
  refresh({uid})
  return result
end

if op == 'limit' then
  local client, chosen = args[1], args[2]
  for _, d in ipairs(words(chosen)) do
    if redis.call('HEXISTS', KEYS[1], d) == 0 then return {'no_department'} end
  end
  local key = cov_key[client]
  if not key then return {'stale'} end
  local was_limited = redis.call('HEXISTS', KEYS[4], client) == 1
  local before = was_limited and zset_members(key) or zset_members(KEYS[3])
  if not was_limited then redis.call('DEL', key) end
  local new = coverage(tree(), chosen, nil)
  redis.call('HSET', KEYS[4], client, chosen)
  write_set(key, was_limited and before or {}, new)
  local added, removed = diff(before, new)
  if added ~= '' or removed ~= '' then
    result[#result + 1] = client
    result[#result + 1] = added
    result[#result + 1] = removed
  end
  return result
end

if op == 'unlimit' then
  local client = args[1]
  local key = cov_key[client]
  if not key then return {'stale'} end
  if redis.call('HEXISTS', KEYS[4], client) == 0 then return result end
  local before = zset_members(key)
  redis.call('HDEL', KEYS[4], client)
  redis.call('DEL', key)
  local added, removed = diff(before, zset_members(KEYS[3]))
  if added ~= '' or removed ~= '' then
    result[#result + 1] = client
    result[#result + 1] = added
    result[#result + 1] = removed
  end
  return result
end

if op == 'drop_client' then
  redis.call('HDEL', KEYS[4], args[1])
  if cov_key[args[1]] then redis.call('DEL', cov_key[args[1]]) end
  return result
end

if op == 'remove_member' then
  local uid = args[1]
  redis.call('ZREM', KEYS[3], uid)
  redis.call('HDEL', KEYS[5], uid)
  redis.call('HDEL', KEYS[2], uid)
  for _, client in ipairs(clients) do
    if redis.call('ZREM', cov_key[client], uid) == 1 then
      result[#result + 1] = client
      result[#result + 1] = ''
      result[#result + 1] = uid
    end
  end
  return result
end

return {'bad_operation'}
