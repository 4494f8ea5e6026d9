-- Which attempt holds an Idempotency-Key's claim: a token the engine makes before it
-- sends the claim (or a takeover), so it can give the claim back even when the claim's
-- answer never reached it (the connection died with a failing-over primary after the
-- commit). The release deletes the claim only while it still carries that token: a
-- claim another attempt took over meanwhile is never touched. Rows from before this
-- column have none and are left to their lease.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS claim uuid;
