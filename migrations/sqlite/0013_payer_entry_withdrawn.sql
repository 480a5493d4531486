-- When a brands file, loaded again, no longer lists an entry it listed before: from then on the
-- entry is not offered to members (transfers already authorized keep running), staff see why,
-- and this plan's registration there is kept in case the file lists it again.
ALTER TABLE payer_entry ADD COLUMN withdrawn_at BIGINT;
