//! Members' permissions (consents) to bring their records from a previous plan.

use baton_vocab::{ConsentChannel, ConsentPolicy, LinkState, TransferState};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// A member's consent to bring their records from a previous plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MemberConsent {
    pub id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    pub payer_id: String,
    pub policy: ConsentPolicy,
    pub period_start: i64,
    pub period_end: i64,
    pub given_at: i64,
    pub channel: ConsentChannel,
    /// The HRex Consent resource (JSON).
    pub resource: String,
    pub withdrawn_at: Option<i64>,
    pub created_at: i64,
    /// Set when the member asked for what arrived to be deleted: records deleted, and records
    /// kept because another permission brought them too.
    pub records_deleted: Option<i64>,
    pub records_kept: Option<i64>,
    /// Directory entries that stayed because other members' records name them.
    pub records_shared: Option<i64>,
    /// The newer consent that took this one's place (the member brought records again from
    /// the same plan); `withdrawn_at` is when.
    pub replaced_by: Option<String>,
}

impl MemberConsent {
    /// In force at `now`: not withdrawn, and inside its period.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.withdrawn_at.is_none() && self.period_start <= now.millis() && now.millis() <= self.period_end
    }
}

const CONSENT_COLUMNS: &str = "id, member_account, payer_id, policy, period_start, period_end, given_at, channel, resource, \
     withdrawn_at, created_at, records_deleted, records_kept, records_shared, replaced_by";

impl Store {
    pub async fn insert_consent(&self, consent: &MemberConsent) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!("INSERT INTO member_consent ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"))
                .bind(&consent.id)
                .bind(consent.member_account.0)
                .bind(&consent.payer_id)
                .bind(consent.policy)
                .bind(consent.period_start)
                .bind(consent.period_end)
                .bind(consent.given_at)
                .bind(consent.channel)
                .bind(&consent.resource)
                .bind(consent.withdrawn_at)
                .bind(consent.created_at)
                .bind(consent.records_deleted)
                .bind(consent.records_kept)
                .bind(consent.records_shared)
                .bind(&consent.replaced_by)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn consent(&self, id: &str) -> Result<Option<MemberConsent>, StoreError> {
        let sql = format!("SELECT {CONSENT_COLUMNS} FROM member_consent WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn consents_of(&self, member: AccountId) -> Result<Vec<MemberConsent>, StoreError> {
        let sql =
            format!("SELECT {CONSENT_COLUMNS} FROM member_consent WHERE member_account = $1 ORDER BY created_at DESC");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(member.0).fetch_all(pool).await?))
    }

    /// Withdraws a consent: its links are revoked and its queued or running transfers cancelled.
    pub async fn withdraw_consent(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        self.end_consent(id, None, at).await
    }

    /// `new` takes the place of `old` (the member brought records again from the same plan):
    /// `old` ends now as replaced — its links revoked, its unfinished transfers cancelled — and
    /// every record it brought is held by `new` instead, so the one permission in force covers
    /// them all (withdrawing it later deletes them, and nothing else). False when `old` had
    /// already ended.
    pub async fn replace_consent(&self, old: &str, new: &str, at: Timestamp) -> Result<bool, StoreError> {
        self.end_consent(old, Some(new), at).await
    }

    async fn end_consent(&self, id: &str, replaced_by: Option<&str>, at: Timestamp) -> Result<bool, StoreError> {
        let withdrawn = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE member_consent SET withdrawn_at = $1, replaced_by = $3 WHERE id = $2 AND withdrawn_at IS NULL",
            )
                .bind(at.millis())
                .bind(id)
                .bind(replaced_by)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let Some(new) = replaced_by.filter(|_| changed > 0) {
                // Records both hold keep `new` once; the rest change hands.
                let named = |p: &str| format!("% {p} %");
                sqlx::query(
                    "UPDATE fhir_resource SET permissions = TRIM(REPLACE(' ' || permissions || ' ', $1, ' ')) \
                     WHERE (' ' || permissions || ' ') LIKE $2 AND (' ' || permissions || ' ') LIKE $3",
                )
                .bind(format!(" {id} "))
                .bind(named(id))
                .bind(named(new))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE fhir_resource SET permissions = TRIM(REPLACE(' ' || permissions || ' ', $1, $2)) \
                     WHERE (' ' || permissions || ' ') LIKE $3",
                )
                .bind(format!(" {id} "))
                .bind(format!(" {new} "))
                .bind(named(id))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE payer_link SET state = $1, access_token = NULL, refresh_token = NULL, id_token = NULL, \
                 updated_at = $2 WHERE consent_id = $3",
            )
            .bind(LinkState::Revoked)
            .bind(at.millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let [queued, running] = TransferState::UNFINISHED;
            sqlx::query(
                "UPDATE transfer SET state = $1, error = 'The member withdrew their consent.', finished_at = $2, \
                 updated_at = $2, lease_owner = NULL, lease_until = NULL \
                 WHERE state IN ($3, $4) AND link_id IN (SELECT id FROM payer_link WHERE consent_id = $5)",
            )
            .bind(TransferState::Cancelled)
            .bind(at.millis())
            .bind(queued)
            .bind(running)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            changed
        });
        Ok(withdrawn > 0)
    }

    /// Records what deleting a withdrawn consent's records did (kept and shared: what stays now).
    pub async fn set_consent_deletion(&self, id: &str, records: &crate::PermissionRecords) -> Result<(), StoreError> {
        let n = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        on_pool!(self, pool => {
            // Added up: deleting again (a second click, or finishing a deletion that stopped
            // halfway) adds what that call deleted, never forgets what the first did.
            sqlx::query(
                "UPDATE member_consent SET records_deleted = COALESCE(records_deleted, 0) + $1, \
                 records_kept = $2, records_shared = $3 WHERE id = $4",
            )
                .bind(n(records.deleted))
                .bind(n(records.kept))
                .bind(n(records.shared))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
