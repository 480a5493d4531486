-- The data-holder side's SMART authorization server.

-- Apps registered to request member data (seeded from configuration).
CREATE TABLE oauth_client (
    client_id     TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    redirect_uris TEXT   NOT NULL,          -- one per line; matched exactly
    secret_hash   TEXT,                     -- argon2id of the shared secret (symmetric clients)
    jwks          TEXT,                     -- inline JWK Set JSON (asymmetric clients)
    jwks_url      TEXT,                     -- or where to fetch it
    scopes        TEXT   NOT NULL,          -- the most this client may be granted
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- One member's approval of one app: every code and token issued from it belongs to it, so
-- revoking the grant revokes them all (code reuse, refresh-token reuse, member withdrawal).
CREATE TABLE oauth_grant (
    id                TEXT    PRIMARY KEY,
    client_id         TEXT    NOT NULL REFERENCES oauth_client (client_id),
    account_id        BIGINT  NOT NULL REFERENCES account (id),
    patient_id        TEXT    NOT NULL,
    scope             TEXT    NOT NULL,     -- as granted
    include_sensitive BOOLEAN NOT NULL,     -- the member's choice on the consent screen
    created_at        BIGINT  NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX oauth_grant_account ON oauth_grant (account_id);

-- Authorization codes (stored as SHA-256 hashes), single use, short-lived.
CREATE TABLE oauth_code (
    code_hash      TEXT   PRIMARY KEY,
    grant_id       TEXT   NOT NULL REFERENCES oauth_grant (id),
    redirect_uri   TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,         -- PKCE S256
    nonce          TEXT,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

-- Access and refresh tokens (SHA-256 hashes; the tokens themselves are never stored).
CREATE TABLE oauth_token (
    token_hash TEXT   PRIMARY KEY,
    grant_id   TEXT   NOT NULL REFERENCES oauth_grant (id),
    kind       TEXT   NOT NULL,             -- access | refresh
    scope      TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,                      -- refresh tokens: when exchanged (rotation)
    revoked_at BIGINT
);
CREATE INDEX oauth_token_grant ON oauth_token (grant_id);

-- `jti`s of client assertions (private_key_jwt) seen, until they expire: replays are refused.
CREATE TABLE oauth_assertion_jti (
    client_id  TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
