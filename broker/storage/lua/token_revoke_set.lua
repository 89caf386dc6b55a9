-- token_revoke_set.lua: delete every token issued under one grant or installation.
-- Also run as a plain EVAL queued inside MULTI (broker.tokens.service.revoke_grant_tokens).
-- KEYS[1]  the grant's or installation's token set (sorted set)
-- ARGV: none
-- Derived keys (the token keys held in the set):
--   all carry the hash tag of KEYS[1] (the app's, b:{a:<client_id>}), so the script stays in one slot.
-- Returns how many tokens were deleted.

-- include: validity

return revoke_set(KEYS[1])
