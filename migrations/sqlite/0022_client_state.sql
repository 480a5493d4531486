-- Admins suspend, resume and remove other plans' systems in the console, and register new
-- ones there: a client's state, and whether its registration comes from the configuration
-- (registered again at every start) or the console.
ALTER TABLE oauth_client ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE oauth_client ADD COLUMN origin TEXT NOT NULL DEFAULT 'configuration';
ALTER TABLE oauth_client ADD COLUMN state_changed_by TEXT;
-- Another plan's identifiers (`system|value`, one per line): a Consent it sends must name one
-- of them as the recipient (HRex mm-1).
ALTER TABLE oauth_client ADD COLUMN identifiers TEXT NOT NULL DEFAULT '';
