-- token_revoke_owner.lua: every token issued under one grant or installation stops working.
-- KEYS[1]  the grant's or installation's hash
-- ARGV[1]  its id (a grant or installation deleted, or replaced by another, is left alone: its
--          tokens already fail the validity rule)
-- Derived keys: none used here (the validity fragment's helpers derive keys of the app's slot, all
--   carrying the hash tag of KEYS[1]).
-- Returns 1 if a new generation began, else 0. The tokens' keys stay, unusable, until they expire.

-- include: validity

return revoke_owner(KEYS[1], ARGV[1])
