-- Asynchronous Payer-to-Payer requests (Bulk Data STU2 pattern): a job per kick-off, owned by
-- the client that asked, its output files, and the member Groups a bulk match made.

CREATE TABLE bulk_job (
    id           TEXT   PRIMARY KEY,
    client_id    TEXT   NOT NULL REFERENCES oauth_client (client_id),
    kind         TEXT   NOT NULL,           -- bulk-member-match
    state        TEXT   NOT NULL,           -- queued | running | completed | failed | cancelled
    request_url  TEXT   NOT NULL,
    request      TEXT   NOT NULL,           -- the kick-off's body
    total        BIGINT NOT NULL,           -- items to do (members)
    done         BIGINT NOT NULL,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,           -- a running job's heartbeat
    completed_at BIGINT,
    expires_at   BIGINT NOT NULL            -- output is served until then
);
CREATE INDEX bulk_job_client ON bulk_job (client_id, created_at);

-- An output file is its parts in order: a job writes one part per member (or per file, when
-- it is written at once), with its progress, so that a job taken over after its worker died
-- goes on from the last member written and never holds a whole file in memory.
CREATE TABLE bulk_file (
    job_id        TEXT   NOT NULL REFERENCES bulk_job (id) ON DELETE CASCADE,
    name          TEXT   NOT NULL,
    part          BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    count         BIGINT NOT NULL,
    body          TEXT   NOT NULL,          -- NDJSON lines
    PRIMARY KEY (job_id, name, part)
);

-- The Groups a bulk match answered with, for the client that asked (`$davinci-data-export`
-- takes the matched one).
CREATE TABLE member_group (
    id         TEXT   PRIMARY KEY,
    client_id  TEXT   NOT NULL REFERENCES oauth_client (client_id),
    job_id     TEXT   NOT NULL REFERENCES bulk_job (id) ON DELETE CASCADE,
    code       TEXT   NOT NULL,             -- match | nomatch | consentconstraint
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX member_group_client ON member_group (client_id, code);
