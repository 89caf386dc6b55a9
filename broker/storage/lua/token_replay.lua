-- token_replay.lua: a used code came back: mark the replay and revoke the code's token family.
-- KEYS[1]  code key (the tombstone left by token_issue)
-- ARGV[1]  app tag prefix
-- Derived keys (the code's grant, whose revoked families the chain joins):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns 1 if the chain was revoked now, else 0.

-- include: validity

local c = redis.call('HMGET', KEYS[1], 'used', 'family', 'grant_id', 'subject')
if c[1] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'replayed', '1')
return revoke_family(ARGV[1], c[4], c[3], c[2])
