-- A counter that every change to the payer directory (brands entries, this plan's registration
-- there, pinned endpoints, admins' on/off settings) bumps in the same transaction. Every Baton
-- instance sharing the database reads it now and then and rebuilds its directory when it moved,
-- so a change made on one instance reaches the others (and `baton transfers work`).
CREATE TABLE payer_directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO payer_directory_version (id, version) VALUES (1, 0);
