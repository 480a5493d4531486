-- Secrets this Baton makes for itself once (random, kept in its own database), e.g. the key
-- that turns a previous plan's resource ids into this plan's opaque record ids: an id such as
-- `heldout-hiv` must not be guessable from the record's id here.
CREATE TABLE instance_secret (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,               -- base64url
    created_at BIGINT NOT NULL
);

-- Records a transfer's records refer to that it had not written when the page was committed:
-- their id here and their id at the previous plan, so that a transfer (resumed or not) can
-- still fetch what did not come with the pages. Removed when the transfer ends.
CREATE TABLE transfer_target (
    transfer_id TEXT NOT NULL REFERENCES transfer (id),
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    PRIMARY KEY (transfer_id, target_type, target_id)
);
