-- org_set_role.lua: change a member's role entry only while it is still member or sub_admin (no
-- lost update, no demotion of an owner or admin by a stale page).
-- KEYS[1]  the org's members    KEYS[2]  the org's roles         (both in {o:<org_id>})
-- ARGV[1]  user id               ARGV[2]  role entry (JSON)
-- Returns 1 if written, 0 if not a member, -1 if an owner or admin.

if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local role = 'member'
if raw then
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' and rec['role'] then role = rec['role'] end
end
if role ~= 'member' and role ~= 'sub_admin' then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
