//! Requests to previous plans for batches of new members (bulk match, export, files), their
//! members' results and the lines read from the export until each member's transfer files them.

mod coverage;

pub use coverage::PreviousCoverage;

use baton_vocab::{MatchResult, RequestState};

use crate::{AccountId, Backend, Store, StoreError, Timestamp, on_pool};

/// A request to one previous plan for a batch of members.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct P2pRequest {
    pub id: String,
    pub payer_id: String,
    pub state: RequestState,
    /// Where the runner is (its own JSON).
    pub checkpoint: String,
    pub members: i64,
    pub matched: i64,
    pub not_matched: i64,
    pub constrained: i64,
    /// NDJSON lines read from the export's files.
    pub lines: i64,
    /// Lines that were not a record of a member asked for (unreadable, another member's).
    pub rejected: i64,
    /// `_since` asked for (an incremental request).
    pub since: Option<String>,
    /// What the previous plan said of its progress (`X-Progress`), or what Baton waits for.
    pub progress_note: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub run_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// One member a request carries.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestMember {
    pub request_id: String,
    pub coverage_id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    /// None: not answered yet.
    pub result: Option<MatchResult>,
    pub old_patient: Option<String>,
    pub transfer_id: Option<String>,
}

/// A line read from an export file, for one member's transfer (`coverage_id`) or shared (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedLine {
    pub coverage_id: String,
    pub resource_type: String,
    pub source_id: String,
    pub body: String,
}

/// The coverage id of lines any member's records may name (Organizations and the like).
pub const SHARED: &str = "*";

const REQUEST_COLUMNS: &str = "id, payer_id, state, checkpoint, members, matched, not_matched, constrained, lines, \
     rejected, since, progress_note, error, attempts, lease_owner, lease_until, run_after, created_at, updated_at, finished_at";

impl Store {
    /// Starts a request for `coverages` (the members it carries), queued to run now; their
    /// coverages are no longer due (the request's end sets when they are next).
    pub async fn create_request(
        &self,
        request: &P2pRequest,
        coverages: &[(String, AccountId)],
    ) -> Result<(), StoreError> {
        let r = request;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&format!(
                "INSERT INTO p2p_request ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14, $15, $16, $17, $18, $19, $20)"
            ))
            .bind(&r.id).bind(&r.payer_id).bind(r.state).bind(&r.checkpoint).bind(r.members).bind(r.matched)
            .bind(r.not_matched).bind(r.constrained).bind(r.lines).bind(r.rejected).bind(&r.since)
            .bind(&r.progress_note).bind(&r.error).bind(r.attempts).bind(&r.lease_owner).bind(r.lease_until)
            .bind(r.run_after).bind(r.created_at).bind(r.updated_at).bind(r.finished_at)
            .execute(&mut *tx)
            .await?;
            for (coverage, member) in coverages {
                sqlx::query("INSERT INTO p2p_request_member (request_id, coverage_id, member_account) VALUES ($1, $2, $3)")
                    .bind(&r.id)
                    .bind(coverage)
                    .bind(member.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE previous_coverage SET next_request_at = NULL, last_request_id = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(&r.id)
                .bind(r.created_at)
                .bind(coverage)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn request(&self, id: &str) -> Result<Option<P2pRequest>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM p2p_request WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// The latest requests, newest first; of one payer when given.
    pub async fn requests(&self, payer: Option<&str>, limit: u32) -> Result<Vec<P2pRequest>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM p2p_request WHERE ($1 IS NULL OR payer_id = $1) \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(payer).bind(i64::from(limit)).fetch_all(pool).await?))
    }

    /// Leases the next request due: unfinished, `run_after` passed, and no live lease.
    pub async fn claim_request(
        &self,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<P2pRequest>, StoreError> {
        let [a, b, c] = RequestState::FINISHED;
        let pick = "SELECT id FROM p2p_request WHERE state NOT IN ($4, $5, $6) AND run_after <= $3 \
                    AND (lease_until IS NULL OR lease_until < $3) ORDER BY run_after, created_at LIMIT 1";
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE p2p_request SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id = ({pick}{lock}) RETURNING {REQUEST_COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(lease_until.millis())
                .bind(now.millis())
                .bind(a)
                .bind(b)
                .bind(c)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Renews a request's lease; `false` when this worker no longer holds it (or it ended).
    pub async fn renew_request_lease(&self, id: &str, owner: &str, lease_until: Timestamp) -> Result<bool, StoreError> {
        let [a, b, c] = RequestState::FINISHED;
        let renewed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE p2p_request SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state NOT IN ($4, $5, $6)",
            )
            .bind(lease_until.millis())
            .bind(id)
            .bind(owner)
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(renewed == 1)
    }

    /// Moves a request this worker holds on: its state, checkpoint and what it is waiting for.
    /// `false` when it no longer holds it (cancelled, or its lease was taken over).
    pub async fn advance_request(
        &self,
        id: &str,
        owner: &str,
        state: RequestState,
        checkpoint: &str,
        progress_note: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let [a, b, c] = RequestState::FINISHED;
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE p2p_request SET state = $1, checkpoint = $2, progress_note = $3, updated_at = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND state NOT IN ($7, $8, $9)",
            )
            .bind(state)
            .bind(checkpoint)
            .bind(progress_note)
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Lets go of a request until `run_after` (waiting for the previous plan), saving its place.
    pub async fn release_request(
        &self,
        id: &str,
        owner: &str,
        run_after: Timestamp,
        checkpoint: &str,
        progress_note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE p2p_request SET lease_owner = NULL, lease_until = NULL, run_after = $1, progress_note = $2, \
                 updated_at = $3, checkpoint = $6 WHERE id = $4 AND lease_owner = $5",
            )
            .bind(run_after.millis())
            .bind(progress_note)
            .bind(Timestamp::now().millis())
            .bind(id)
            .bind(owner)
            .bind(checkpoint)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Ends a request this worker holds (completed, failed with why, cancelled).
    pub async fn finish_request(
        &self,
        id: &str,
        owner: &str,
        state: RequestState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE p2p_request SET state = $1, error = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, \
                 lease_until = NULL, progress_note = NULL WHERE id = $4 AND lease_owner = $5",
            )
            .bind(state)
            .bind(error)
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // A stopped request keeps its lines until it is readied for a retry
            // (`ready_stopped_request`): retried before that, it resumes where it was.
            if changed == 1 && state == RequestState::Completed {
                sqlx::query("DELETE FROM p2p_staged WHERE request_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed == 1)
    }

    /// Staff or operator action: an unfinished request is cancelled (its worker notices at its
    /// next step), with the transfers it started that are still queued.
    pub async fn cancel_request(&self, id: &str, by: &str, now: Timestamp) -> Result<bool, StoreError> {
        let [a, b, c] = RequestState::FINISHED;
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE p2p_request SET state = $1, error = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, \
                 lease_until = NULL, progress_note = NULL WHERE id = $4 AND state NOT IN ($5, $6, $7)",
            )
            .bind(RequestState::Cancelled)
            .bind(format!("Cancelled by {by}."))
            .bind(now.millis())
            .bind(id)
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            for member in self.request_members(id).await? {
                if let Some(transfer) = member.transfer_id {
                    self.cancel_transfer(&transfer, by, now).await?;
                }
            }
        }
        Ok(changed == 1)
    }

    /// Failed or cancelled requests whose checkpoint is part-way through a bulk exchange (a
    /// match or an export polled, files read or filed): to be readied for a retry.
    pub async fn stopped_requests_mid_way(&self, limit: i64) -> Result<Vec<P2pRequest>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM p2p_request WHERE state IN ($1, $2) \
             AND (checkpoint LIKE $3 OR checkpoint LIKE $4 OR checkpoint LIKE $5 OR checkpoint LIKE $6) \
             AND checkpoint NOT LIKE $7 ORDER BY finished_at LIMIT $8"
        );
        let phase = |p: &str| format!("%\"phase\":\"{p}\"%");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(RequestState::Failed)
                .bind(RequestState::Cancelled)
                .bind(phase("match_poll"))
                .bind(phase("export_poll"))
                .bind(phase("download"))
                .bind(phase("deliver"))
                .bind("%\"single\":true%")
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Gives a stopped request its new checkpoint, from before the export was read (its lines
    /// let go), only if its checkpoint is still `expected`, so two workers never both act on
    /// it; whether it did.
    pub async fn ready_stopped_request(&self, id: &str, expected: &str, checkpoint: &str) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE p2p_request SET checkpoint = $1, lines = 0, rejected = 0 \
                 WHERE id = $2 AND state IN ($3, $4) AND checkpoint = $5",
            )
            .bind(checkpoint)
            .bind(id)
            .bind(RequestState::Failed)
            .bind(RequestState::Cancelled)
            .bind(expected)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                sqlx::query("DELETE FROM p2p_staged WHERE request_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed == 1)
    }

    /// Staff or operator action: a failed or cancelled request runs again from where it was.
    pub async fn retry_request(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE p2p_request SET state = $1, error = NULL, finished_at = NULL, run_after = $2, updated_at = $2 \
                 WHERE id = $3 AND state IN ($4, $5)",
            )
            .bind(RequestState::Queued)
            .bind(now.millis())
            .bind(id)
            .bind(RequestState::Failed)
            .bind(RequestState::Cancelled)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    pub async fn request_members(&self, id: &str) -> Result<Vec<RequestMember>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT request_id, coverage_id, member_account, result, old_patient, transfer_id \
                 FROM p2p_request_member WHERE request_id = $1 ORDER BY coverage_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The transfers a request started to file its members' records.
    pub async fn request_transfers(&self, id: &str) -> Result<Vec<crate::Transfer>, StoreError> {
        let columns =
            crate::transfers::TRANSFER_COLUMNS.split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>();
        let sql = format!(
            "SELECT {} FROM transfer t JOIN p2p_request_member m ON m.transfer_id = t.id WHERE m.request_id = $1",
            columns.join(", ")
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_all(pool).await?))
    }

    /// The requests that carried `member`, newest first, with what became of them there.
    pub async fn member_requests(&self, member: AccountId) -> Result<Vec<(P2pRequest, RequestMember)>, StoreError> {
        let mut out = vec![];
        let rows: Vec<RequestMember> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT request_id, coverage_id, member_account, result, old_patient, transfer_id \
                 FROM p2p_request_member WHERE member_account = $1",
            )
            .bind(member.0)
            .fetch_all(pool)
            .await?
        });
        for row in rows {
            if let Some(request) = self.request(&row.request_id).await? {
                out.push((request, row));
            }
        }
        out.sort_by(|a, b| b.0.created_at.cmp(&a.0.created_at));
        Ok(out)
    }

    /// Records the match's answer for each member and the request's counts, with its next
    /// checkpoint, at once. `false` when this worker no longer holds the request.
    pub async fn record_match(
        &self,
        id: &str,
        owner: &str,
        results: &[(String, MatchResult, Option<String>)],
        checkpoint: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let count = |r: MatchResult| results.iter().filter(|(_, result, _)| *result == r).count() as i64;
        let matched = count(MatchResult::Matched);
        let constrained = count(MatchResult::ConsentRefused);
        let not_matched = results.len() as i64 - matched - constrained;
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE p2p_request SET state = $1, checkpoint = $2, matched = $3, not_matched = $4, constrained = $5, \
                 progress_note = NULL, updated_at = $6 WHERE id = $7 AND lease_owner = $8 AND state = $9",
            )
            .bind(RequestState::Exporting)
            .bind(checkpoint)
            .bind(matched)
            .bind(not_matched)
            .bind(constrained)
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .bind(RequestState::Matching)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                for (coverage, result, patient) in results {
                    sqlx::query(
                        "UPDATE p2p_request_member SET result = $1, old_patient = $2 WHERE request_id = $3 AND coverage_id = $4",
                    )
                    .bind(result)
                    .bind(patient)
                    .bind(id)
                    .bind(coverage)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            changed == 1
        }))
    }

    /// Stores lines read from an export file with the checkpoint after them, at once (a
    /// resumed download starts after the last line stored). `false` when this worker no longer
    /// holds the request.
    pub async fn stage_lines(
        &self,
        id: &str,
        owner: &str,
        lines: &[StagedLine],
        read: i64,
        rejected: i64,
        checkpoint: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE p2p_request SET checkpoint = $1, lines = lines + $2, rejected = rejected + $3, updated_at = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND state = $7",
            )
            .bind(checkpoint)
            .bind(read)
            .bind(rejected)
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .bind(RequestState::Downloading)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 && !lines.is_empty() {
                let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM p2p_staged WHERE request_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                for (chunk_index, chunk) in lines.chunks(200).enumerate() {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO p2p_staged (request_id, coverage_id, seq, resource_type, source_id, body) ",
                    );
                    insert.push_values(chunk.iter().enumerate(), |mut row, (i, line)| {
                        row.push_bind(id)
                            .push_bind(&line.coverage_id)
                            .push_bind(next + 1 + (chunk_index * 200 + i) as i64)
                            .push_bind(&line.resource_type)
                            .push_bind(&line.source_id)
                            .push_bind(&line.body);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            changed == 1
        }))
    }

    /// A member's staged lines after `after` (their `seq`), at most `limit`, in order.
    pub async fn staged_lines(
        &self,
        request: &str,
        coverage: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, body FROM p2p_staged WHERE request_id = $1 AND coverage_id = $2 AND seq > $3 \
                 ORDER BY seq LIMIT $4",
            )
            .bind(request)
            .bind(coverage)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// A shared record the export brought (`Organization/…` and the like), by its id there.
    pub async fn staged_shared(
        &self,
        request: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT body FROM p2p_staged WHERE request_id = $1 AND coverage_id = $2 AND resource_type = $3 \
                 AND source_id = $4 ORDER BY seq DESC LIMIT 1",
            )
            .bind(request)
            .bind(SHARED)
            .bind(resource_type)
            .bind(source_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Whose staged record `Type/id` (its id at the previous plan) is: the coverage it was
    /// staged for, when it was staged for one member.
    pub async fn staged_owner(
        &self,
        request: &str,
        resource_type: &str,
        source_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT coverage_id FROM p2p_staged WHERE request_id = $1 AND resource_type = $2 AND source_id = $3 \
                 AND coverage_id NOT LIKE '*%' AND coverage_id NOT LIKE '~%' LIMIT 1",
            )
            .bind(request)
            .bind(resource_type)
            .bind(source_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Moves staged lines (by `seq`) from `from` to the coverage given with each, at once.
    pub async fn restage(&self, request: &str, from: &str, moves: &[(i64, String)]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (seq, to) in moves {
                sqlx::query("UPDATE p2p_staged SET coverage_id = $1 WHERE request_id = $2 AND coverage_id = $3 AND seq = $4")
                    .bind(to)
                    .bind(request)
                    .bind(from)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Notes the transfer that files a matched member's records (before it is created, so a
    /// resumed request creates the same one).
    pub async fn set_request_transfer(&self, request: &str, coverage: &str, transfer: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE p2p_request_member SET transfer_id = $1 WHERE request_id = $2 AND coverage_id = $3")
                .bind(transfer)
                .bind(request)
                .bind(coverage)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The request and coverage whose export a transfer files, when it files one.
    pub async fn delivery_of(&self, transfer: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT request_id, coverage_id FROM p2p_request_member WHERE transfer_id = $1")
                .bind(transfer)
                .fetch_optional(pool)
                .await?
        }))
    }
}
