-- ledger_view.lua: one page of one reader view of one log (broker.ledger.views).
-- KEYS[1]  the view: fixed-width entries (index u32, ledger time f64 [, app code [, org code]]), in
--          (ledger time, index) order
-- ARGV[1]  entry width (12; 16 with the app code; 20 with both codes)
-- ARGV[2]  'f' (oldest first) | 'b' (newest first)
-- ARGV[3]  since, inclusive ('' for none)              ARGV[4]  until, inclusive ('' for none)
-- ARGV[5]  after this ledger time ('' for none) ...    ARGV[6]  ... and this index, exclusive, in
--          the direction read (entries (t, i) > (time, index) forwards, < backwards)
-- ARGV[7]  how many entries to return at most
-- ARGV[8]  app codes, 4 bytes each ('' for any)        ARGV[9]  organization codes ('' for any)
-- ARGV[10] how many entries to look at at most: a filtered read stops there
-- Returns {index, time, index, time, ..., stop}: times as strings (%.17g); stop is '' when the
-- page filled or the range ended, else '<time> <index>' of the last entry looked at (the reader
-- goes on from there).
-- Derived keys: none; the views fragment reads only the view it is given, KEYS[1] (so every key
--   carries the hash tag of KEYS[1]).

-- include: views

local w = tonumber(ARGV[1])
local forward = ARGV[2] == 'f'
local since, till = tonumber(ARGV[3]), tonumber(ARGV[4])
local after_t, after_i = tonumber(ARGV[5]), tonumber(ARGV[6])
local want, budget = tonumber(ARGV[7]), tonumber(ARGV[10])
local n = view_length(KEYS[1], w)

local function codes(raw)
  if raw == '' then return nil end
  local set = {}
  for p = 1, #raw, 4 do set[string.sub(raw, p, p + 3)] = true end
  return set
end
local apps, orgs = codes(ARGV[8]), codes(ARGV[9])

local function entry(p) return view_entry(KEYS[1], w, p) end  -- 0-based position -> index, time
-- the first position in [0, n] at which the monotone predicate (true, ..., true, false, ...) is false
local function first_false(pred)
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if pred(mid) then lo = mid + 1 else hi = mid end
  end
  return lo
end
local function before_or_at(t, i, bt, bi) return t < bt or (t == bt and i <= bi) end

local p, step
if forward then
  p = first_false(function(q)
    local i, t = entry(q)
    return (since ~= nil and t < since) or (after_t ~= nil and before_or_at(t, i, after_t, after_i))
  end)
  step = 1
else
  p = first_false(function(q)
    local i, t = entry(q)
    return (till == nil or t <= till) and (after_t == nil or t < after_t or (t == after_t and i < after_i))
  end) - 1
  step = -1
end

local out, found, looked = {}, 0, 0
local CHUNK = 64
while p >= 0 and p < n do
  -- read up to CHUNK entries in the direction of travel with one GETRANGE
  local lo, hi
  if forward then lo, hi = p, math.min(n - 1, p + CHUNK - 1) else lo, hi = math.max(0, p - CHUNK + 1), p end
  local block = redis.call('GETRANGE', KEYS[1], lo * w, hi * w + w - 1)
  local q = p
  while q >= lo and q <= hi do
    local off = (q - lo) * w + 1
    local i, t = struct.unpack('>I4d', block, off)
    if (forward and till ~= nil and t > till) or (not forward and since ~= nil and t < since) then
      table.insert(out, '')
      return out
    end
    local ok = true
    if apps and not apps[string.sub(block, off + 12, off + 15)] then ok = false end
    if ok and orgs and not orgs[string.sub(block, off + 16, off + 19)] then ok = false end
    if ok then
      table.insert(out, i)
      table.insert(out, string.format('%.17g', t))
      found = found + 1
      if found >= want then
        table.insert(out, '')
        return out
      end
    end
    looked = looked + 1
    if looked >= budget and q + step >= 0 and q + step < n then
      table.insert(out, string.format('%.17g', t) .. ' ' .. i)
      return out
    end
    q = q + step
  end
  p = q
end
table.insert(out, '')
return out
