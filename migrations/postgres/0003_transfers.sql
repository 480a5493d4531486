-- A member's consent to bring their records from a previous plan (HRex Consent).
CREATE TABLE member_consent (
    id             TEXT   PRIMARY KEY,
    member_account BIGINT NOT NULL REFERENCES account (id),
    payer_id       TEXT   NOT NULL,              -- the previous plan (payer directory id)
    policy         TEXT   NOT NULL,              -- regular (sensitive excluded) | sensitive (included)
    period_start   BIGINT NOT NULL,
    period_end     BIGINT NOT NULL,              -- no pull after this
    given_at       BIGINT NOT NULL,
    channel        TEXT   NOT NULL,              -- how it was given, e.g. web
    resource       TEXT   NOT NULL,              -- the HRex Consent resource, JSON
    withdrawn_at   BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX member_consent_member ON member_consent (member_account);

-- A member's authorization at a previous plan: where, for whom, and the (sealed) tokens.
CREATE TABLE payer_link (
    id                TEXT    PRIMARY KEY,
    member_account    BIGINT  NOT NULL REFERENCES account (id),
    payer_id          TEXT    NOT NULL,
    consent_id        TEXT    REFERENCES member_consent (id),
    fhir_base         TEXT    NOT NULL,
    patient_id        TEXT,                      -- the member's Patient at the previous plan
    scope             TEXT    NOT NULL DEFAULT '',  -- as granted
    include_sensitive BOOLEAN NOT NULL,
    access_token      TEXT,                      -- sealed with the token key (AEAD)
    access_expires_at BIGINT,
    refresh_token     TEXT,                      -- sealed
    id_token          TEXT,                      -- sealed
    state             TEXT    NOT NULL,          -- pending | active | needs_reauthorization | revoked
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);
CREATE INDEX payer_link_member ON payer_link (member_account);

-- Transfers: durable jobs, leased by workers, resumed from their checkpoint.
CREATE TABLE transfer (
    id               TEXT    PRIMARY KEY,
    link_id          TEXT    NOT NULL REFERENCES payer_link (id),
    member_account   BIGINT  NOT NULL REFERENCES account (id),
    kind             TEXT    NOT NULL,          -- full | incremental
    since            BIGINT,                    -- incremental: only what changed since
    state            TEXT    NOT NULL,          -- queued | running | completed | failed | cancelled | needs_reauthorization
    checkpoint       TEXT    NOT NULL,          -- where to resume (JSON)
    progress         TEXT    NOT NULL,          -- counts per type, category and exclusion reason (JSON)
    resources_stored BIGINT  NOT NULL DEFAULT 0,
    pages_done       BIGINT  NOT NULL DEFAULT 0,
    error            TEXT,                      -- why it failed, in plain words
    lease_owner      TEXT,
    lease_until      BIGINT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_after        BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX transfer_claim ON transfer (state, run_after);
CREATE INDEX transfer_member ON transfer (member_account, created_at);
CREATE INDEX transfer_link ON transfer (link_id, created_at);

-- What happened, for the timeline.
CREATE TABLE transfer_event (
    transfer_id TEXT   NOT NULL REFERENCES transfer (id),
    at          BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    detail      TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX transfer_event_transfer ON transfer_event (transfer_id, at);

-- Every request made to the previous plan (never a token).
CREATE TABLE transfer_request (
    transfer_id TEXT   NOT NULL REFERENCES transfer (id),
    at          BIGINT NOT NULL,
    method      TEXT   NOT NULL,
    url         TEXT   NOT NULL,
    status      INTEGER,                        -- NULL when no response came
    duration_ms BIGINT NOT NULL,
    bytes       BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX transfer_request_transfer ON transfer_request (transfer_id, at);

-- Resources received that could not be stored, and why (never their content).
CREATE TABLE transfer_rejected (
    transfer_id TEXT   NOT NULL REFERENCES transfer (id),
    at          BIGINT NOT NULL,
    source      TEXT   NOT NULL,                -- Type/id at the previous plan, or the entry's position
    reason      TEXT   NOT NULL
);
CREATE INDEX transfer_rejected_transfer ON transfer_rejected (transfer_id);
