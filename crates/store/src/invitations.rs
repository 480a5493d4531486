//! Invitations: a single-use link for an imported member to set their password.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// An invitation. The token itself is kept only sealed (for staff to show the link again);
/// it is looked up by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Invitation {
    pub token_hash: String,
    pub account_id: i64,
    pub sealed_token: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Invitation {
    /// Usable at `now`: not used, not revoked, not expired.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && now.millis() < self.expires_at
    }
}

const COLUMNS: &str = "token_hash, account_id, sealed_token, created_by, created_at, expires_at, used_at, revoked_at";

impl Store {
    /// Stores a new invitation and revokes the account's earlier open ones (one link works).
    pub async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE invitation SET revoked_at = $1 WHERE account_id = $2 AND used_at IS NULL AND revoked_at IS NULL")
                .bind(invitation.created_at)
                .bind(invitation.account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!("INSERT INTO invitation ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                .bind(&invitation.token_hash)
                .bind(invitation.account_id)
                .bind(&invitation.sealed_token)
                .bind(invitation.created_by)
                .bind(invitation.created_at)
                .bind(invitation.expires_at)
                .bind(invitation.used_at)
                .bind(invitation.revoked_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM invitation WHERE token_hash = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await?))
    }

    /// The account's newest invitation, if any.
    pub async fn latest_invitation(&self, account: AccountId) -> Result<Option<Invitation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM invitation WHERE account_id = $1 ORDER BY created_at DESC LIMIT 1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(account.0).fetch_optional(pool).await?))
    }

    /// Uses an open invitation and sets the account's password in one transaction; false when
    /// the invitation was not open (used, revoked or expired) — nothing changes then.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AccountId>, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let account: Option<i64> = sqlx::query_scalar(
                "UPDATE invitation SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
                 AND expires_at > $1 RETURNING account_id",
            )
            .bind(now.millis())
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            // An invitation sets a first password only: never one over an account's own.
            let set = match account {
                Some(account) => sqlx::query(
                    "UPDATE account SET password_hash = $1 WHERE id = $2 AND password_hash IS NULL",
                )
                .bind(password_hash)
                .bind(account)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => 0,
            };
            if set == 1 {
                tx.commit().await?;
                account.map(AccountId)
            } else {
                tx.rollback().await?;
                None
            }
        }))
    }
}
