//! The Payer-to-Payer API on the old plan's side: tokens issued to other plans' systems,
//! members matched for them with the Consent they sent, and the failed-match count that
//! holds back a client guessing at members.

use baton_vocab::ConsentPolicy;

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// An access token issued to another plan's system (SMART Backend Services).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SystemToken {
    pub token_hash: String,
    pub client_id: String,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// A member matched for another plan, with what its Consent allows.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberMatch {
    pub id: String,
    pub client_id: String,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub policy: ConsentPolicy,
    pub period_start: i64,
    /// The first instant after the consent's period.
    pub period_end: i64,
    /// The Consent as the plan sent it (JSON).
    pub consent: String,
    pub matched_at: i64,
}

impl Store {
    pub async fn insert_system_token(&self, token: &SystemToken) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO system_token (token_hash, client_id, scope, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token.token_hash)
            .bind(&token.client_id)
            .bind(&token.scope)
            .bind(token.issued_at)
            .bind(token.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The unexpired system token with this hash. Expired ones are forgotten on the way.
    pub async fn system_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<SystemToken>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM system_token WHERE expires_at < $1").bind(now.millis()).execute(pool).await?;
        });
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token_hash, client_id, scope, issued_at, expires_at FROM system_token \
                 WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now.millis())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The member's identifier for other plans: `candidate` the first time, the same value ever after.
    pub async fn member_umb(&self, account: AccountId, candidate: &str) -> Result<String, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO member_umb (account_id, value) VALUES ($1, $2) ON CONFLICT (account_id) DO NOTHING")
                .bind(account.0)
                .bind(candidate)
                .execute(pool)
                .await?;
        });
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT value FROM member_umb WHERE account_id = $1")
                .bind(account.0)
                .fetch_one(pool)
                .await?
        }))
    }

    /// The member another plan knows by `umb`.
    pub async fn account_by_umb(&self, umb: &str) -> Result<Option<AccountId>, StoreError> {
        let id: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT account_id FROM member_umb WHERE value = $1").bind(umb).fetch_optional(pool).await?
        });
        Ok(id.map(AccountId))
    }

    pub async fn insert_member_match(&self, matched: &MemberMatch) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO member_match (id, client_id, account_id, policy, period_start, period_end, consent, \
                 matched_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&matched.id)
            .bind(&matched.client_id)
            .bind(matched.account_id.0)
            .bind(matched.policy)
            .bind(matched.period_start)
            .bind(matched.period_end)
            .bind(&matched.consent)
            .bind(matched.matched_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The matches `client_id` made of the member, newest first.
    pub async fn member_matches(&self, client_id: &str, account: AccountId) -> Result<Vec<MemberMatch>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, client_id, account_id, policy, period_start, period_end, consent, matched_at \
                 FROM member_match WHERE client_id = $1 AND account_id = $2 ORDER BY matched_at DESC, id",
            )
            .bind(client_id)
            .bind(account.0)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The newest match `client_id` made of the member whose Patient is `patient_id`, whose
    /// Consent's period holds at `now`.
    pub async fn current_match(
        &self,
        client_id: &str,
        patient_id: &str,
        now: Timestamp,
    ) -> Result<Option<MemberMatch>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT m.id, m.client_id, m.account_id, m.policy, m.period_start, m.period_end, m.consent, \
                 m.matched_at FROM member_match m JOIN account a ON a.id = m.account_id \
                 WHERE m.client_id = $1 AND a.patient_id = $2 AND m.period_start <= $3 AND m.period_end > $3 \
                 ORDER BY m.matched_at DESC, m.id LIMIT 1",
            )
            .bind(client_id)
            .bind(patient_id)
            .bind(now.millis())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Notes a failed match by `client_id`; failures older than `forget_before` are dropped.
    pub async fn record_match_failure(
        &self,
        client_id: &str,
        at: Timestamp,
        forget_before: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM member_match_failure WHERE at < $1").bind(forget_before.millis()).execute(pool).await?;
            sqlx::query("INSERT INTO member_match_failure (client_id, at) VALUES ($1, $2)")
                .bind(client_id)
                .bind(at.millis())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// How many matches `client_id` failed since `since`.
    pub async fn match_failures_since(&self, client_id: &str, since: Timestamp) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM member_match_failure WHERE client_id = $1 AND at >= $2")
                .bind(client_id)
                .bind(since.millis())
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
