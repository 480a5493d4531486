//! Read-only API tokens for the plan's other systems. Only a hash of each token is stored.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub include_sensitive: bool,
    pub created_by: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<i64>,
}

const COLUMNS: &str =
    "id, name, token_hash, include_sensitive, created_by, created_at, last_used_at, revoked_at, revoked_by";

impl Store {
    pub async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!("INSERT INTO api_token ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                .bind(&token.id)
                .bind(&token.name)
                .bind(&token.token_hash)
                .bind(token.include_sensitive)
                .bind(token.created_by)
                .bind(token.created_at)
                .bind(token.last_used_at)
                .bind(token.revoked_at)
                .bind(token.revoked_by)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A live (not revoked) token by its hash; notes when it was used.
    pub async fn use_api_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_token WHERE token_hash = $1 AND revoked_at IS NULL");
        let token: Option<ApiToken> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await?);
        if let Some(token) = &token {
            on_pool!(self, pool => {
                sqlx::query("UPDATE api_token SET last_used_at = $1 WHERE id = $2")
                    .bind(now.millis())
                    .bind(&token.id)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(token)
    }

    /// Every token, newest first (without anything usable: only hashes are stored).
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_token ORDER BY created_at DESC, id");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    /// Revokes a token; false when it was unknown or already revoked.
    pub async fn revoke_api_token(&self, id: &str, by: AccountId, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query("UPDATE api_token SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(at.millis())
                .bind(by.0)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }
}
