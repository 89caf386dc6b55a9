-- token_replay.lua: a used code came back: mark the replay and revoke the code's token family.
-- KEYS[1]  code key (the tombstone left by token_issue)
-- ARGV[1]  app tag prefix
-- Derived keys (the family set and the token keys it holds):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns how many tokens were revoked.

-- include: validity

local fam = redis.call('HGET', KEYS[1], 'family')
if redis.call('HGET', KEYS[1], 'used') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'replayed', '1')
if fam then return revoke_set(ARGV[1] .. ':fam:' .. fam) end
return 0
