-- Payer directory entries staff load from SMART User-access Brand Bundles (configured payers
-- stay in configuration). This plan's registration at each (client id, and the *name* of a
-- configured credential) is entered by staff; secrets and keys never live in the database.
CREATE TABLE payer_entry (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    aliases     TEXT    NOT NULL DEFAULT '',   -- one per line
    states      TEXT    NOT NULL DEFAULT '',   -- space separated two-letter codes
    logo_url    TEXT,
    fhir_base   TEXT    NOT NULL UNIQUE,
    source_url  TEXT    NOT NULL,              -- the brands file it came from
    client_id   TEXT,
    credential  TEXT,                          -- name of a credential in configuration
    enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT  NOT NULL
);

-- Brands files loaded, for refreshing with If-None-Match.
CREATE TABLE brand_source (
    url         TEXT    PRIMARY KEY,
    etag        TEXT,
    checked_at  BIGINT  NOT NULL,
    changed_at  BIGINT  NOT NULL,
    status      TEXT    NOT NULL,              -- what the last check found, in plain words
    entries     BIGINT  NOT NULL DEFAULT 0
);
