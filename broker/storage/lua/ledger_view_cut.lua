-- ledger_view_cut.lua: remove from one reader view the entries whose ledger time is before a cutoff
-- (a prefix: a view is in ledger-time order), for ``broker ledger prune``.
-- KEYS[1]  the view (broker.ledger.views)
-- ARGV[1]  entry width           ARGV[2]  cutoff (unix seconds)
-- Returns the leaf indexes of the removed entries, in order; a view left empty is deleted.
-- Derived keys: none; the views fragment reads only the view it is given, KEYS[1] (so every key
--   carries the hash tag of KEYS[1]).

-- include: views

local w, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = view_length(KEYS[1], w)
local lo, hi = 0, n
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local _, t = view_entry(KEYS[1], w, mid)
  if t < cutoff then lo = mid + 1 else hi = mid end
end
if lo == 0 then return {} end
local cut, removed = redis.call('GETRANGE', KEYS[1], 0, lo * w - 1), {}
for p = 0, lo - 1 do
  local i = struct.unpack('>I4', cut, p * w + 1)
  table.insert(removed, i)
end
if lo >= n then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], lo * w, n * w - 1))
end
return removed
