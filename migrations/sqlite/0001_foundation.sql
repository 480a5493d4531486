-- Accounts: members of this plan, its staff and admins.
CREATE TABLE account (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT    NOT NULL UNIQUE,      -- normalised (trimmed, lower case)
    display_name    TEXT    NOT NULL,
    password_hash   TEXT,                         -- argon2id PHC string; NULL until set
    roles           TEXT    NOT NULL,             -- space separated: member staff privacy admin
    member_id       TEXT    UNIQUE,               -- the plan's member id (members only)
    birth_date      TEXT,                         -- YYYY-MM-DD
    coverage_start  TEXT,                         -- YYYY-MM-DD
    patient_id      TEXT,                         -- logical id of the member's own FHIR Patient
    created_at      BIGINT  NOT NULL
);

-- Failed sign-ins, one row per failure; keyed by "account:<username>" or "ip:<address>".
CREATE TABLE sign_in_failure (
    key TEXT   NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX sign_in_failure_key_at ON sign_in_failure (key, at);

-- Sessions (tower-sessions-sqlx-store's SqliteStore layout).
CREATE TABLE tower_sessions (
    id          TEXT    PRIMARY KEY NOT NULL,
    data        BLOB    NOT NULL,
    expiry_date INTEGER NOT NULL
);

-- The FHIR resource store: the current version of every resource this plan holds.
-- `seq` never changes for a (type, id): it orders search results, so paging with a
-- snapshot bound (`seq <= max at first page`) is stable under concurrent writes.
CREATE TABLE fhir_resource (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type  TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    version_id     BIGINT  NOT NULL,
    last_updated   BIGINT  NOT NULL,
    member_account BIGINT  REFERENCES account (id),   -- the member this record is about
    patient_id     TEXT,                              -- patient compartment (Patient logical id)
    source_system  TEXT,                              -- base URL of the plan it came from
    source_id      TEXT,                              -- its logical id there
    security       TEXT    NOT NULL DEFAULT '',       -- meta.security as "system|code" lines
    sensitive      BOOLEAN NOT NULL DEFAULT FALSE,    -- labelled or classified sensitive
    date_start     BIGINT,                            -- clinical/service date range (ms),
    date_end       BIGINT,                            --   for date search parameters
    origin_transfer TEXT,                             -- the transfer that brought it, if received
    deleted_at     BIGINT,                            -- set when deleted: reads answer 410 Gone
    body           TEXT    NOT NULL,
    UNIQUE (resource_type, id)
);
CREATE INDEX fhir_resource_compartment ON fhir_resource (patient_id, resource_type, seq);
CREATE INDEX fhir_resource_member ON fhir_resource (member_account, resource_type, seq);
CREATE INDEX fhir_resource_origin ON fhir_resource (origin_transfer) WHERE origin_transfer IS NOT NULL;
CREATE UNIQUE INDEX fhir_resource_source
    ON fhir_resource (source_system, resource_type, source_id) WHERE source_system IS NOT NULL;

-- Token search index (identifier): one row per identifier of a resource.
CREATE TABLE fhir_identifier (
    resource_seq BIGINT NOT NULL REFERENCES fhir_resource (seq) ON DELETE CASCADE,
    system       TEXT   NOT NULL DEFAULT '',
    value        TEXT   NOT NULL
);
CREATE INDEX fhir_identifier_value ON fhir_identifier (value, system);
CREATE INDEX fhir_identifier_resource ON fhir_identifier (resource_seq);

-- Reference index: one row per reference a resource makes (for _include / _revinclude).
CREATE TABLE fhir_reference (
    resource_seq BIGINT NOT NULL REFERENCES fhir_resource (seq) ON DELETE CASCADE,
    path         TEXT   NOT NULL,            -- search parameter name, e.g. "target", "coverage"
    target_type  TEXT   NOT NULL,
    target_id    TEXT   NOT NULL
);
CREATE INDEX fhir_reference_target ON fhir_reference (target_type, target_id, path);
CREATE INDEX fhir_reference_resource ON fhir_reference (resource_seq);
