-- org_members_page.lua: one page of the members an installation covers, in join order: the org's
-- member set, or the installation's coverage set when the org limits it to chosen departments
-- (a limited installation that covers nobody gets an empty page, never the whole org).
-- KEYS[1]  the org's members (zset)   KEYS[2]  coverage config (hash)   KEYS[3]  the client's coverage
--          (all in {o:<org_id>})
-- Derived keys: none; the page's source is KEYS[1] or KEYS[3] held in a local, both with the
--   hash tag of KEYS[1].
-- ARGV[1]  client id   ARGV[2]  after this join sequence (exclusive)   ARGV[3]  how many (limit + 1)
--          ARGV[4]  a user id: instead of a page, whether that member is covered ({uid, seq} or {})
-- Returns {uid, seq, uid, seq, ...}.

local source = KEYS[1]
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then source = KEYS[3] end
if ARGV[4] and ARGV[4] ~= '' then
  local seq = redis.call('ZSCORE', source, ARGV[4])
  if seq then return {ARGV[4], seq} end
  return {}
end
return redis.call('ZRANGEBYSCORE', source, '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
