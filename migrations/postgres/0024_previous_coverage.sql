-- This plan as the new plan on the Payer-to-Payer API, server to server.
--
-- A member's previous coverage (from the roster, the member or staff) and their opt-in; the
-- consent it gave is a member_consent row like any other.
CREATE TABLE previous_coverage (
    id                TEXT    PRIMARY KEY,
    member_account    BIGINT  NOT NULL REFERENCES account (id),
    payer_id          TEXT    NOT NULL,          -- a payer directory entry
    member_id         TEXT    NOT NULL,          -- the member or subscriber id on the old card
    coverage_start    TEXT,                      -- YYYY-MM-DD
    coverage_end      TEXT,
    concurrent        BOOLEAN NOT NULL DEFAULT FALSE,  -- the other plan still covers them
    opt_in            TEXT    NOT NULL,          -- unknown | in | out
    opted_at          BIGINT,
    opt_in_channel    TEXT,                      -- enrollment | web | phone | paper
    opt_in_recorded_by TEXT,
    consent_id        TEXT,                      -- the Consent the opt-in gave
    next_request_at   BIGINT,                    -- when it is next due (none: not due)
    last_request_id   TEXT,
    last_exported_at  TEXT,                      -- the last export's transactionTime (`_since`)
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    UNIQUE (member_account, payer_id)
);
CREATE INDEX previous_coverage_due ON previous_coverage (opt_in, next_request_at);

-- A request to one previous plan for a batch of members: bulk match, then export, then files,
-- then each matched member's transfer. Leased like transfers; `checkpoint` says where it is.
CREATE TABLE p2p_request (
    id            TEXT   PRIMARY KEY,
    payer_id      TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    checkpoint    TEXT   NOT NULL,
    members       BIGINT NOT NULL,
    matched       BIGINT NOT NULL DEFAULT 0,
    not_matched   BIGINT NOT NULL DEFAULT 0,
    constrained   BIGINT NOT NULL DEFAULT 0,
    lines         BIGINT NOT NULL DEFAULT 0,   -- NDJSON lines read
    rejected      BIGINT NOT NULL DEFAULT 0,   -- lines that were not a resource of a member asked for
    since         TEXT,                        -- `_since` asked for (incremental)
    progress_note TEXT,                        -- the previous plan's X-Progress, or what Baton waits for
    error         TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   BIGINT,
    run_after     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX p2p_request_queue ON p2p_request (state, run_after);
CREATE INDEX p2p_request_payer ON p2p_request (payer_id, created_at);

-- Each member a request carries, and what became of them.
CREATE TABLE p2p_request_member (
    request_id     TEXT   NOT NULL REFERENCES p2p_request (id) ON DELETE CASCADE,
    coverage_id    TEXT   NOT NULL REFERENCES previous_coverage (id) ON DELETE CASCADE,
    member_account BIGINT NOT NULL,
    result         TEXT,                        -- matched | no_match | consent_refused (none: not answered)
    old_patient    TEXT,                        -- the member's Patient id at the previous plan
    transfer_id    TEXT,
    PRIMARY KEY (request_id, coverage_id)
);
CREATE INDEX p2p_request_member_account ON p2p_request_member (member_account);

-- Lines read from the export's files, each the member's it names (or `*`: a shared record such
-- as an Organization), until that member's transfer files them.
CREATE TABLE p2p_staged (
    request_id    TEXT   NOT NULL REFERENCES p2p_request (id) ON DELETE CASCADE,
    coverage_id   TEXT   NOT NULL,
    seq           BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    source_id     TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    PRIMARY KEY (request_id, coverage_id, seq)
);
CREATE INDEX p2p_staged_source ON p2p_staged (request_id, resource_type, source_id);
