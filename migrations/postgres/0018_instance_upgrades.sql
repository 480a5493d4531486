-- One-time upgrades of stored data that need Baton's own code (not SQL) to run, each done once
-- per database: e.g. `opaque-record-ids`, which gives records received before record ids were
-- opaque their opaque id.
CREATE TABLE instance_upgrade (
    name    TEXT   PRIMARY KEY,
    done_at BIGINT NOT NULL
);
