-- The staff console: audit log, roster imports, invitations, API tokens.

-- Every staff view of member data and every action (who, when, which member, what).
CREATE TABLE audit_event (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             BIGINT  NOT NULL,
    actor_account  BIGINT,                     -- the signed-in account; NULL for API tokens
    actor          TEXT    NOT NULL,           -- who, as shown: "sam (Sam Rivera)", "api token billing"
    action         TEXT    NOT NULL,           -- e.g. member.view, transfer.retry, record.reveal
    member_account BIGINT,                     -- the member concerned, when one is
    subject        TEXT    NOT NULL DEFAULT '', -- what: a transfer id, Type/id, a search
    detail         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_event_at ON audit_event (at);
CREATE INDEX audit_event_member ON audit_event (member_account, at);
CREATE INDEX audit_event_actor ON audit_event (actor_account, at);

-- An uploaded enrollment roster, kept until committed so staff can preview it first.
CREATE TABLE roster_import (
    id           TEXT   PRIMARY KEY,
    format       TEXT   NOT NULL,              -- csv | fhir-bundle
    file_name    TEXT   NOT NULL DEFAULT '',
    content      TEXT   NOT NULL,
    created_by   BIGINT NOT NULL REFERENCES account (id),
    created_at   BIGINT NOT NULL,
    committed_at BIGINT,
    report       TEXT                          -- what the commit did (JSON)
);

-- A link for an imported member to set their password: single use, expires.
CREATE TABLE invitation (
    token_hash   TEXT   PRIMARY KEY,           -- SHA-256 of the token
    account_id   BIGINT NOT NULL REFERENCES account (id),
    sealed_token TEXT   NOT NULL,              -- the token sealed (AEAD) so staff can show the link again
    created_by   BIGINT REFERENCES account (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX invitation_account ON invitation (account_id);

-- Read-only tokens for the plan's other systems (`/api/fhir`); only their hash is kept.
CREATE TABLE api_token (
    id                TEXT    PRIMARY KEY,
    name              TEXT    NOT NULL,
    token_hash        TEXT    NOT NULL UNIQUE,
    include_sensitive BOOLEAN NOT NULL DEFAULT FALSE,
    created_by        BIGINT  NOT NULL REFERENCES account (id),
    created_at        BIGINT  NOT NULL,
    last_used_at      BIGINT,
    revoked_at        BIGINT,
    revoked_by        BIGINT  REFERENCES account (id)
);
