-- Staff settings for the payer directory.
--
-- A configured payer (`[[payers]]` in configuration) switched off or back on by an admin: the
-- row wins over the payer's `enabled` in configuration; no row means configuration decides.
CREATE TABLE payer_enabled_override (
    payer_id    TEXT    PRIMARY KEY,
    enabled     BOOLEAN NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- A brands entry's pinned endpoints (for plans whose SMART discovery is missing or wrong) and
-- the scopes to ask for instead of those chosen from the plan's capabilities. Entered by an
-- admin; a brands refresh leaves them as they are.
ALTER TABLE payer_entry ADD COLUMN authorize_url TEXT;
ALTER TABLE payer_entry ADD COLUMN token_url TEXT;
ALTER TABLE payer_entry ADD COLUMN scopes TEXT;
