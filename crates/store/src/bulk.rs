//! Asynchronous Payer-to-Payer requests: jobs, their NDJSON output, and member Groups.

use baton_vocab::BulkJobState;

use crate::{Store, StoreError, Timestamp, on_pool};

/// A bulk request as kept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkJob {
    pub id: String,
    pub client_id: String,
    pub kind: String,
    pub state: BulkJobState,
    pub request_url: String,
    pub request: String,
    pub total: i64,
    pub done: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: i64,
}

/// A part of an output file of a job (files are their parts in `part` order). Listed as a
/// whole file, `part` is 0, `count` the file's, and `body` empty.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkFile {
    pub job_id: String,
    pub name: String,
    pub part: i64,
    pub resource_type: String,
    pub count: i64,
    pub body: String,
}

/// A member Group a bulk match made.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberGroup {
    pub id: String,
    pub client_id: String,
    pub job_id: String,
    pub code: String,
    pub body: String,
    pub created_at: i64,
}

/// Inserts one [`BulkFile`] part through `$executor`.
macro_rules! insert_part {
    ($file:expr, $executor:expr) => {
        sqlx::query(
            "INSERT INTO bulk_file (job_id, name, part, resource_type, count, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&$file.job_id)
        .bind(&$file.name)
        .bind($file.part)
        .bind(&$file.resource_type)
        .bind($file.count)
        .bind(&$file.body)
        .execute($executor)
        .await?
    };
}

const JOB_COLUMNS: &str = "id, client_id, kind, state, request_url, request, total, done, error, created_at, \
     updated_at, completed_at, expires_at";

impl Store {
    pub async fn insert_bulk_job(&self, job: &BulkJob) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "INSERT INTO bulk_job ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(&job.id)
            .bind(&job.client_id)
            .bind(&job.kind)
            .bind(&job.state)
            .bind(&job.request_url)
            .bind(&job.request)
            .bind(job.total)
            .bind(job.done)
            .bind(&job.error)
            .bind(job.created_at)
            .bind(job.updated_at)
            .bind(job.completed_at)
            .bind(job.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn bulk_job(&self, id: &str) -> Result<Option<BulkJob>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM bulk_job WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Takes a job to run: one queued, or one running whose worker has not been heard of since
    /// `stale_before` (it died). `false` when another worker has it, or it has ended.
    pub async fn claim_bulk_job(&self, id: &str, now: Timestamp, stale_before: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE bulk_job SET state = $4, updated_at = $1 WHERE id = $2 \
                 AND (state = $5 OR (state = $4 AND updated_at < $3))",
            )
            .bind(now.millis())
            .bind(id)
            .bind(stale_before.millis())
            .bind(BulkJobState::Running)
            .bind(BulkJobState::Queued)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Notes a running job's progress (and that its worker is alive).
    pub async fn bulk_job_progress(&self, id: &str, done: i64, now: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE bulk_job SET done = $1, updated_at = $2 WHERE id = $3 AND state = $4")
                .bind(done)
                .bind(now.millis())
                .bind(id)
                .bind(BulkJobState::Running)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends a running job with its files and Groups, at once; `false` when it was cancelled meanwhile.
    pub async fn complete_bulk_job(
        &self,
        id: &str,
        files: &[BulkFile],
        groups: &[MemberGroup],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let completed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE bulk_job SET state = $3, done = total, completed_at = $1, updated_at = $1 \
                 WHERE id = $2 AND state = $4",
            )
            .bind(now.millis())
            .bind(id)
            .bind(BulkJobState::Completed)
            .bind(BulkJobState::Running)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                for file in files {
                    insert_part!(file, &mut *tx);
                }
                for group in groups {
                    sqlx::query(
                        "INSERT INTO member_group (id, client_id, job_id, code, body, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&group.id)
                    .bind(&group.client_id)
                    .bind(&group.job_id)
                    .bind(&group.code)
                    .bind(&group.body)
                    .bind(group.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            changed == 1
        });
        Ok(completed)
    }

    /// Ends a job that could not be done, with why.
    pub async fn fail_bulk_job(&self, id: &str, error: &str, now: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE bulk_job SET state = $4, error = $1, updated_at = $2 WHERE id = $3 AND state = $5")
                .bind(error)
                .bind(now.millis())
                .bind(id)
                .bind(BulkJobState::Failed)
                .bind(BulkJobState::Running)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Cancels a job (its output goes with it); `false` when there was none.
    pub async fn cancel_bulk_job(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM bulk_file WHERE job_id = $1").bind(id).execute(pool).await?;
            sqlx::query("DELETE FROM member_group WHERE job_id = $1").bind(id).execute(pool).await?;
            sqlx::query("UPDATE bulk_job SET state = $3, updated_at = $1 WHERE id = $2 AND state <> $3")
                .bind(now.millis())
                .bind(id)
                .bind(BulkJobState::Cancelled)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// How many of `client_id`'s jobs are queued or running.
    pub async fn active_bulk_jobs(&self, client_id: &str) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM bulk_job WHERE client_id = $1 AND state IN ($2, $3)")
                .bind(client_id)
                .bind(BulkJobState::Queued)
                .bind(BulkJobState::Running)
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Forgets the output files of jobs whose retention ended before `now` (their Groups stay:
    /// an export names them); how many files went.
    pub async fn purge_expired_bulk_files(&self, now: Timestamp) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM bulk_file WHERE job_id IN (SELECT id FROM bulk_job WHERE expires_at < $1)")
                .bind(now.millis())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Writes a running job's parts and notes its progress, at once: `false` (nothing written)
    /// when the job is no longer running (cancelled, or taken over).
    pub async fn append_bulk_parts(
        &self,
        id: &str,
        parts: &[BulkFile],
        done: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE bulk_job SET done = $1, updated_at = $2 WHERE id = $3 AND state = $4")
                .bind(done)
                .bind(now.millis())
                .bind(id)
                .bind(BulkJobState::Running)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 1 {
                for part in parts {
                    insert_part!(part, &mut *tx);
                }
                tx.commit().await?;
            }
            changed == 1
        }))
    }

    /// Forgets the parts from `part` on (a worker died after writing them, before its progress
    /// said so — they will be written again).
    pub async fn discard_bulk_parts_from(&self, id: &str, part: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM bulk_file WHERE job_id = $1 AND part >= $2").bind(id).bind(part).execute(pool).await?;
        });
        Ok(())
    }

    /// A job's files, whole: name, type, and how many resources (bodies left empty).
    pub async fn bulk_files(&self, job_id: &str) -> Result<Vec<BulkFile>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT job_id, name, CAST(0 AS BIGINT) AS part, resource_type, CAST(SUM(count) AS BIGINT) AS count, \
                 '' AS body FROM bulk_file WHERE job_id = $1 GROUP BY job_id, name, resource_type ORDER BY name",
            )
            .bind(job_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The parts of a file after `after` (exclusive), in order, at most `limit`.
    pub async fn bulk_file_parts(
        &self,
        job_id: &str,
        name: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BulkFile>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT job_id, name, part, resource_type, count, body FROM bulk_file \
                 WHERE job_id = $1 AND name = $2 AND part > $3 ORDER BY part LIMIT $4",
            )
            .bind(job_id)
            .bind(name)
            .bind(after.unwrap_or(i64::MIN))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// The Groups bulk matches made for `client_id`, newest first (at most `limit`).
    pub async fn member_groups(&self, client_id: &str, limit: u32) -> Result<Vec<MemberGroup>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, client_id, job_id, code, body, created_at FROM member_group WHERE client_id = $1 \
                 ORDER BY created_at DESC, id LIMIT $2",
            )
            .bind(client_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// A Group a bulk match made for `client_id`.
    pub async fn member_group(&self, client_id: &str, id: &str) -> Result<Option<MemberGroup>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, client_id, job_id, code, body, created_at FROM member_group WHERE id = $1 AND client_id = $2",
            )
            .bind(id)
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        }))
    }
}
