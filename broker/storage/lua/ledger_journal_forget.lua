-- ledger_journal_forget.lua: the sequencer found an app's journal for one log empty
-- (broker.ledger.sequencer ``_forget_if_empty``). In the app's slot, atomically with the gate.
-- KEYS[1]  the app's journal for the log      KEYS[2]  its announcement mark (journal .. ':ann')
-- ARGV     none
-- Returns 1 (journal and mark deleted: the next record announces the journal again) or 0 (the
-- journal holds records again: leave everything as it is).

if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
