//! The transfer queue: enqueueing, leasing, renewing, ending, retrying and cancelling jobs.

use baton_vocab::{EventKind, TransferKind, TransferState};
use serde::{Deserialize, Serialize};

use super::links::PayerLink;
use crate::{AccountId, Backend, Store, StoreError, Timestamp, on_pool};

/// A transfer job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Transfer {
    pub id: String,
    pub link_id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    pub kind: TransferKind,
    pub since: Option<i64>,
    pub state: TransferState,
    pub checkpoint: String,
    pub progress: String,
    pub resources_stored: i64,
    pub pages_done: i64,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: i32,
    pub run_after: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

pub(crate) const TRANSFER_COLUMNS: &str = "id, link_id, member_account, kind, since, state, checkpoint, progress, resources_stored, \
     pages_done, error, lease_owner, lease_until, attempts, run_after, created_at, started_at, finished_at, updated_at";

impl Store {
    /// The links a periodic pull is due for (those a request brought are asked for again by
    /// request, see `previous_coverage`): active, their consent in force at `now`, none of
    /// their transfers queued or running, and the last one that completed done before
    /// `finished_before`; each with when that one started (the next asks for what changed
    /// since). Longest waiting first.
    pub async fn links_due_for_pull(
        &self,
        finished_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT l.id, MAX(COALESCE(t.started_at, t.created_at)) FROM payer_link l \
                 JOIN member_consent c ON c.id = l.consent_id \
                 JOIN transfer t ON t.link_id = l.id AND t.state = 'completed' \
                 WHERE l.state = 'active' AND l.access <> 'bulk_export' AND c.withdrawn_at IS NULL AND c.period_end > $1 \
                   AND NOT EXISTS (SELECT 1 FROM transfer q WHERE q.link_id = l.id AND q.state IN ('queued', 'running')) \
                 GROUP BY l.id HAVING MAX(t.finished_at) < $2 \
                 ORDER BY MAX(t.finished_at) LIMIT $3",
            )
            .bind(now.millis())
            .bind(finished_before.millis())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Queues a transfer; returns its id.
    pub async fn enqueue_transfer(
        &self,
        id: &str,
        link: &PayerLink,
        kind: TransferKind,
        since: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO transfer (id, link_id, member_account, kind, since, state, checkpoint, progress, run_after, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, '{}', '{}', $7, $7, $7)",
            )
            .bind(id)
            .bind(&link.id)
            .bind(link.member_account.0)
            .bind(kind)
            .bind(since.map(Timestamp::millis))
            .bind(TransferState::Queued)
            .bind(at.millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(at.millis())
                .bind(EventKind::Queued)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Leases the next transfer that is due: a queued one, or a running one whose worker's lease
    /// ran out (that worker died). Returns it with `state = running`.
    pub async fn claim_transfer(
        &self,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Transfer>, StoreError> {
        let pick = "SELECT id FROM transfer WHERE (state = $5 AND run_after <= $3) \
                    OR (state = $4 AND lease_until < $3) ORDER BY run_after, created_at LIMIT 1";
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE transfer SET state = $4, lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
             started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = ({pick}{lock}) RETURNING {TRANSFER_COLUMNS}"
        );
        let claimed: Option<Transfer> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(lease_until.millis())
                .bind(now.millis())
                .bind(TransferState::Running)
                .bind(TransferState::Queued)
                .fetch_optional(pool)
                .await?
        });
        if let Some(transfer) = &claimed {
            self.add_transfer_event(
                &transfer.id,
                now,
                EventKind::Claimed,
                &format!("worker {owner}, attempt {}", transfer.attempts),
            )
            .await?;
        }
        Ok(claimed)
    }

    /// Renews the lease; `false` if this worker no longer holds the job.
    pub async fn renew_lease(&self, id: &str, owner: &str, lease_until: Timestamp) -> Result<bool, StoreError> {
        let renewed = on_pool!(self, pool => {
            sqlx::query("UPDATE transfer SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = $4")
                .bind(lease_until.millis())
                .bind(id)
                .bind(owner)
                .bind(TransferState::Running)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renewed == 1)
    }

    /// Ends a transfer this worker holds: completed, failed (with why), needs reauthorization
    /// or cancelled. `false` if it no longer held it.
    pub async fn finish_transfer(
        &self,
        id: &str,
        owner: &str,
        final_state: TransferState,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let finished = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE transfer SET state = $1, error = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, \
                 lease_until = NULL WHERE id = $4 AND lease_owner = $5 AND state = $6",
            )
            .bind(final_state)
            .bind(error)
            .bind(at.millis())
            .bind(id)
            .bind(owner)
            .bind(TransferState::Running)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(at.millis())
                    .bind(EventKind::from(final_state))
                    .bind(error.unwrap_or(""))
                    .execute(&mut *tx)
                    .await?;
                if matches!(final_state, TransferState::Completed | TransferState::Cancelled) {
                    // Only a run that may be retried still needs them (a retry resumes it).
                    sqlx::query("DELETE FROM transfer_target WHERE transfer_id = $1").bind(id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            changed
        });
        Ok(finished == 1)
    }

    /// Puts a running transfer back in the queue to run after `run_after` (a worker stopping,
    /// or waiting out a long `Retry-After`).
    pub async fn release_transfer(
        &self,
        id: &str,
        owner: &str,
        run_after: Timestamp,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let released = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE transfer SET state = $1, run_after = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                 WHERE id = $4 AND lease_owner = $5 AND state = $6",
            )
            .bind(TransferState::Queued)
            .bind(run_after.millis())
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .bind(TransferState::Running)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if released == 1 {
            self.add_transfer_event(id, now, EventKind::Paused, reason).await?;
        }
        Ok(released == 1)
    }

    /// Staff or operator action: a finished transfer runs again from its checkpoint.
    pub async fn retry_transfer(&self, id: &str, by: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE transfer SET state = $1, error = NULL, run_after = $2, finished_at = NULL, updated_at = $2 \
                 WHERE id = $3 AND state IN ($4, $5, $6)",
            )
            .bind(TransferState::Queued)
            .bind(at.millis())
            .bind(id)
            .bind(TransferState::RETRYABLE[0])
            .bind(TransferState::RETRYABLE[1])
            .bind(TransferState::RETRYABLE[2])
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            self.add_transfer_event(id, at, EventKind::Retry, by).await?;
        }
        Ok(changed == 1)
    }

    /// Staff or operator action: a queued or running transfer is cancelled (a running worker
    /// notices at its next commit).
    pub async fn cancel_transfer(&self, id: &str, by: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE transfer SET state = $1, error = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, \
                 lease_until = NULL WHERE id = $4 AND state IN ($5, $6)",
            )
            .bind(TransferState::Cancelled)
            .bind(format!("Cancelled by {by}."))
            .bind(at.millis())
            .bind(id)
            .bind(TransferState::UNFINISHED[0])
            .bind(TransferState::UNFINISHED[1])
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            self.add_transfer_event(id, at, EventKind::Cancelled, by).await?;
        }
        Ok(changed == 1)
    }

    pub async fn transfer(&self, id: &str) -> Result<Option<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }
}
