-- A member who brings records again from the same plan refreshes their permission: the
-- earlier consent ends, replaced by the newer one (which then holds what it brought).
ALTER TABLE member_consent ADD COLUMN replaced_by TEXT;
