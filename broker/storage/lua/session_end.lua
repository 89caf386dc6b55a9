-- session_end.lua: end sessions of one person at once (sign out everywhere, password change).
-- KEYS[1]     the person's session index (sorted set)
-- KEYS[2..n]  the session hashes to delete (same person: same slot)
-- ARGV[1..n-1] the index members of those sessions, in the same order
-- Returns the number of sessions that still existed.

local ended = 0
for i = 2, #KEYS do
  ended = ended + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[i - 1])
end
return ended
