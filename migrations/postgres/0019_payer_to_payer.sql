-- The Payer-to-Payer API on the old plan's side: other plans' systems get access tokens
-- (SMART Backend Services, no member), match members ($member-match) with the Consent the
-- member gave them, and are held back when they try too many matches that fail.

-- Access tokens issued with `client_credentials` (SHA-256 hashes; never the tokens).
CREATE TABLE system_token (
    token_hash TEXT   PRIMARY KEY,
    client_id  TEXT   NOT NULL REFERENCES oauth_client (client_id),
    scope      TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX system_token_expiry ON system_token (expires_at);

-- The stable identifier (HRex `hrex-temp#UMB`) a member is known by to other plans.
CREATE TABLE member_umb (
    account_id BIGINT NOT NULL PRIMARY KEY REFERENCES account (id),
    value      TEXT   NOT NULL UNIQUE
);

-- A member matched for another plan, with the Consent it sent: checked again whenever that
-- plan asks for the member's data.
CREATE TABLE member_match (
    id           TEXT   PRIMARY KEY,
    client_id    TEXT   NOT NULL REFERENCES oauth_client (client_id),
    account_id   BIGINT NOT NULL REFERENCES account (id),
    policy       TEXT   NOT NULL,           -- regular | sensitive
    period_start BIGINT NOT NULL,
    period_end   BIGINT NOT NULL,           -- the first instant after the consent's period
    consent      TEXT   NOT NULL,           -- the Consent as sent
    matched_at   BIGINT NOT NULL
);
CREATE INDEX member_match_client_account ON member_match (client_id, account_id);

-- Matches that failed, per client, for the brute-force guard.
CREATE TABLE member_match_failure (
    client_id TEXT   NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX member_match_failure_client ON member_match_failure (client_id, at);
