-- _views.lua: reading the ledger's reader views (broker.ledger.views).
-- A fragment, not a script: the loader replaces a line "-- include: views" with this file.
-- KEYS: none of its own (the functions take the view's key).
-- ARGV: none of its own.
-- A view is a string of fixed-width entries (index u32, ledger time f64 [, app code, org code]);
-- the sequencer grows it ahead in zero bytes, so its entries are those before the first zero one
-- (ledger times are positive).
-- view_entry(key, w, p): index and ledger time of the entry at 0-based position p.
-- view_length(key, w): how many entries the view holds (a binary search for its first zero entry).

local function view_entry(key, w, p)
  return struct.unpack('>I4d', redis.call('GETRANGE', key, p * w, p * w + w - 1))
end
local function view_length(key, w)
  local lo, hi = 0, math.floor(redis.call('STRLEN', key) / w)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local _, t = view_entry(key, w, mid)
    if t > 0 then lo = mid + 1 else hi = mid end
  end
  return lo
end
