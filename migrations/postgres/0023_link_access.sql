-- A link is the member's own authorization at the previous plan (refresh tokens) or a match
-- the previous plan made for this plan's system (the Payer-to-Payer API: Backend Services
-- tokens, asked for again when they expire).
ALTER TABLE payer_link ADD COLUMN access TEXT NOT NULL DEFAULT 'member';
