//! Members' authorizations at previous plans, holding the (sealed) tokens.

use baton_vocab::{LinkAccess, LinkState, SensitiveSharing};

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// A member's authorization at a previous plan.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PayerLink {
    pub id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    pub payer_id: String,
    pub consent_id: Option<String>,
    pub fhir_base: String,
    pub patient_id: Option<String>,
    pub scope: String,
    pub include_sensitive: bool,
    /// Sealed (encrypted) tokens: never stored in clear.
    pub access_token: Option<String>,
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub state: LinkState,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the previous plan said about sensitive information when it granted access; `None`
    /// when it did not say.
    pub source_sensitive: Option<SensitiveSharing>,
    /// The member's own authorization there, or a match for this plan's system.
    pub access: LinkAccess,
}

impl PayerLink {
    /// Where one of a link's tokens is sealed (`part`: `access`, `refresh` or `id`): the sealed
    /// value opens only there.
    pub fn token_place(link_id: &str, part: &str) -> String {
        format!("payer_link/{link_id}/{part}")
    }
}

const LINK_COLUMNS: &str = "id, member_account, payer_id, consent_id, fhir_base, patient_id, scope, include_sensitive, \
     access_token, access_expires_at, refresh_token, id_token, state, created_at, updated_at, source_sensitive, access";

impl Store {
    pub async fn insert_link(&self, link: &PayerLink) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "INSERT INTO payer_link ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ))
            .bind(&link.id)
            .bind(link.member_account.0)
            .bind(&link.payer_id)
            .bind(&link.consent_id)
            .bind(&link.fhir_base)
            .bind(&link.patient_id)
            .bind(&link.scope)
            .bind(link.include_sensitive)
            .bind(&link.access_token)
            .bind(link.access_expires_at)
            .bind(&link.refresh_token)
            .bind(&link.id_token)
            .bind(link.state)
            .bind(link.created_at)
            .bind(link.updated_at)
            .bind(link.source_sensitive)
            .bind(link.access)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn link(&self, id: &str) -> Result<Option<PayerLink>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM payer_link WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn links_of(&self, member: AccountId) -> Result<Vec<PayerLink>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM payer_link WHERE member_account = $1 ORDER BY created_at DESC");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(member.0).fetch_all(pool).await?))
    }

    /// Replaces a link's (sealed) tokens after an authorization or a refresh; the refresh token
    /// is replaced in the same statement, so a rotated token is never lost.
    pub async fn update_link_tokens(
        &self,
        id: &str,
        access_token: &str,
        access_expires_at: Option<i64>,
        refresh_token: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE payer_link SET access_token = $1, access_expires_at = $2, \
                 refresh_token = COALESCE($3, refresh_token), state = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(access_token)
            .bind(access_expires_at)
            .bind(refresh_token)
            .bind(LinkState::Active)
            .bind(at.millis())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn set_link_state(&self, id: &str, state: LinkState, at: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE payer_link SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(state)
                .bind(at.millis())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
