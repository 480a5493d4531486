//! Persistence for the data-holder side's authorization server: registered clients, grants,
//! authorization codes, tokens (hashed) and client-assertion `jti`s.

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// A registered client app.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// One redirect URI per line.
    pub redirect_uris: String,
    pub secret_hash: Option<String>,
    pub jwks: Option<String>,
    pub jwks_url: Option<String>,
    pub scopes: String,
    pub state: ClientState,
    pub origin: ClientOrigin,
    /// Who last suspended, resumed or removed it (an admin, as the audit log names them).
    pub state_changed_by: Option<String>,
    /// Another plan's identifiers (`system|value`), one per line.
    pub identifiers: String,
}

impl OAuthClient {
    pub fn redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.redirect_uris.lines().map(str::trim).filter(|l| !l.is_empty())
    }

    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.identifiers.lines().map(str::trim).filter(|l| !l.is_empty())
    }

    /// Another plan's system (SMART Backend Services): no redirect URI, so no member signs in
    /// through it.
    pub fn is_system(&self) -> bool {
        self.redirect_uris().next().is_none()
    }
}

/// A member's approval of a client.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthGrant {
    pub id: String,
    pub client_id: String,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub patient_id: String,
    pub scope: String,
    pub include_sensitive: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// An app a member allowed that can still reach their records: for their Connected apps page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectedApp {
    #[sqlx(flatten)]
    pub grant: OAuthGrant,
    pub client_name: String,
    /// When its access ends: the last of its live tokens expires (milliseconds).
    pub access_until: i64,
}

/// A new authorization code (its hash).
#[derive(Debug, Clone)]
pub struct NewCode {
    pub code_hash: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: Timestamp,
}

/// An authorization code as redeemed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthCode {
    pub code_hash: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed(OAuthCode, OAuthGrant),
    /// Already spent: a replay (the caller revokes the grant).
    AlreadyUsed(OAuthGrant),
    Unknown,
}

pub use baton_vocab::{ClientOrigin, ClientState, TokenKind};

/// A token (its hash) with its grant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthToken {
    pub token_hash: String,
    pub grant_id: String,
    pub kind: TokenKind,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const CLIENT_COLUMNS: &str =
    "client_id, name, redirect_uris, secret_hash, jwks, jwks_url, scopes, state, origin, state_changed_by, identifiers";

const GRANT_COLUMNS: &str =
    "g.id, g.client_id, g.account_id, g.patient_id, g.scope, g.include_sensitive, g.created_at, g.revoked_at";

impl Store {
    /// Creates or replaces a client registration. Its state is kept when it exists already: a
    /// client an admin suspended stays suspended when the configuration registers it again.
    pub async fn put_oauth_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        self.write_oauth_client(
            client,
            "DO UPDATE SET name = excluded.name, redirect_uris = excluded.redirect_uris, \
             secret_hash = excluded.secret_hash, jwks = excluded.jwks, jwks_url = excluded.jwks_url, \
             scopes = excluded.scopes, origin = excluded.origin, identifiers = excluded.identifiers, \
             updated_at = excluded.updated_at",
        )
        .await?;
        Ok(())
    }

    /// Registers a client only if its id was never used: false when it was.
    pub async fn insert_oauth_client(&self, client: &OAuthClient) -> Result<bool, StoreError> {
        Ok(self.write_oauth_client(client, "DO NOTHING").await? == 1)
    }

    /// Inserts `client`; `on_conflict` says what an existing registration of its id becomes.
    async fn write_oauth_client(&self, client: &OAuthClient, on_conflict: &str) -> Result<u64, StoreError> {
        let now = Timestamp::now().millis();
        let sql = format!(
            "INSERT INTO oauth_client ({CLIENT_COLUMNS}, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT (client_id) {on_conflict}"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(&client.redirect_uris)
                .bind(&client.secret_hash)
                .bind(&client.jwks)
                .bind(&client.jwks_url)
                .bind(&client.scopes)
                .bind(client.state)
                .bind(client.origin)
                .bind(&client.state_changed_by)
                .bind(&client.identifiers)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id = $1"))
                .bind(client_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every registered client, by name.
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&format!("SELECT {CLIENT_COLUMNS} FROM oauth_client ORDER BY name, client_id"))
                .fetch_all(pool)
                .await?
        }))
    }

    /// Suspends, resumes or removes a client: false when it is unknown or removed already (a
    /// removed client stays removed). Leaving `Active` ends its system tokens at once, and
    /// removing it cancels its unfinished bulk requests.
    pub async fn set_oauth_client_state(
        &self,
        client_id: &str,
        state: ClientState,
        by: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE oauth_client SET state = $1, state_changed_by = $2, updated_at = $3 \
                 WHERE client_id = $4 AND state <> 'removed'",
            )
            .bind(state)
            .bind(by)
            .bind(now.millis())
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 && state != ClientState::Active {
                sqlx::query("DELETE FROM system_token WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
            }
            if changed == 1 && state == ClientState::Removed {
                sqlx::query(
                    "UPDATE bulk_job SET state = 'cancelled', updated_at = $1 \
                     WHERE client_id = $2 AND state IN ('queued', 'running')",
                )
                .bind(now.millis())
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed == 1)
    }

    pub async fn insert_oauth_grant(&self, grant: &OAuthGrant) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_grant (id, client_id, account_id, patient_id, scope, include_sensitive, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&grant.id)
            .bind(&grant.client_id)
            .bind(grant.account_id.0)
            .bind(&grant.patient_id)
            .bind(&grant.scope)
            .bind(grant.include_sensitive)
            .bind(grant.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn oauth_grant(&self, id: &str) -> Result<Option<OAuthGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grant g WHERE g.id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn insert_oauth_code(&self, code: &NewCode) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_code (code_hash, grant_id, redirect_uri, code_challenge, nonce, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&code.code_hash)
            .bind(&code.grant_id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.nonce)
            .bind(code.expires_at.millis())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Spends an authorization code, atomically: of two concurrent redemptions exactly one
    /// gets [`CodeRedemption::Redeemed`].
    pub async fn redeem_oauth_code(&self, code_hash: &str, now: Timestamp) -> Result<CodeRedemption, StoreError> {
        let grant_sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grant g WHERE g.id = $1");
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let code: Option<OAuthCode> = sqlx::query_as(
                "SELECT code_hash, grant_id, redirect_uri, code_challenge, nonce, expires_at, used_at \
                 FROM oauth_code WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(code) = code else {
                return Ok(CodeRedemption::Unknown);
            };
            let grant: OAuthGrant = sqlx::query_as(&grant_sql)
                .bind(&code.grant_id)
                .fetch_one(&mut *tx)
                .await?;
            let spent = sqlx::query("UPDATE oauth_code SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
                .bind(now.millis())
                .bind(code_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            if spent == 1 {
                Ok(CodeRedemption::Redeemed(code, grant))
            } else {
                Ok(CodeRedemption::AlreadyUsed(grant))
            }
        })
    }

    pub async fn insert_oauth_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        kind: TokenKind,
        scope: &str,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_token (token_hash, grant_id, kind, scope, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(grant_id)
            .bind(kind.as_str())
            .bind(scope)
            .bind(issued_at.millis())
            .bind(expires_at.millis())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A token and its grant, by hash (revoked and expired ones included: callers decide).
    pub async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OAuthToken, OAuthGrant)>, StoreError> {
        let token: Option<OAuthToken> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token_hash, grant_id, kind, scope, issued_at, expires_at, used_at, revoked_at \
                 FROM oauth_token WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(token) = token else { return Ok(None) };
        let grant = self
            .oauth_grant(&token.grant_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("token of unknown grant {}", token.grant_id)))?;
        Ok(Some((token, grant)))
    }

    /// Marks a refresh token exchanged; `false` if it already was, or was revoked (reuse).
    pub async fn spend_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        let spent = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_token SET used_at = $1 WHERE token_hash = $2 AND kind = 'refresh' \
                 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now.millis())
            .bind(token_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(spent == 1)
    }

    /// The apps `account` allowed that hold a live token now, newest first.
    pub async fn connected_apps(&self, account: AccountId, now: Timestamp) -> Result<Vec<ConnectedApp>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS}, c.name AS client_name, t.until AS access_until FROM oauth_grant g \
             JOIN oauth_client c ON c.client_id = g.client_id \
             JOIN (SELECT grant_id, MAX(expires_at) AS until FROM oauth_token \
                   WHERE revoked_at IS NULL AND used_at IS NULL AND expires_at > $2 GROUP BY grant_id) t \
             ON t.grant_id = g.id \
             WHERE g.account_id = $1 AND g.revoked_at IS NULL ORDER BY g.created_at DESC"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(account.0).bind(now.millis()).fetch_all(pool).await?))
    }

    /// Revokes a grant and every token issued from it.
    pub async fn revoke_oauth_grant(&self, grant_id: &str, now: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE oauth_grant SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.millis())
                .bind(grant_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE oauth_token SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL")
                .bind(now.millis())
                .bind(grant_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Revokes one token.
    pub async fn revoke_oauth_token(&self, token_hash: &str, now: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE oauth_token SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                .bind(now.millis())
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a client assertion's `jti`; `false` when it was seen before (a replay).
    /// Expired entries are forgotten on the way.
    pub async fn remember_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM oauth_assertion_jti WHERE expires_at < $1")
                .bind(now.millis())
                .execute(pool)
                .await?;
        });
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )
            .bind(client_id)
            .bind(jti)
            .bind(expires_at.millis())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }
}
