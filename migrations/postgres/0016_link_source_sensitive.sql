-- What the previous plan said about sensitive information when it granted access (Baton's own
-- authorization server says it in the token response): 'excluded', 'included', or NULL when it
-- did not say — then nobody here can tell whether it left anything out.
ALTER TABLE payer_link ADD COLUMN source_sensitive TEXT;
