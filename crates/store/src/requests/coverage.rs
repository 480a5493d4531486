//! New members' previous coverage and their opt-in to this plan asking that plan for their
//! records (CMS-0057-F Payer-to-Payer, server to server).

use baton_vocab::{ConsentChannel, OptIn, RequestState, day};
use time::Date;

use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// A member's coverage at a previous plan, and what they said about this plan asking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousCoverage {
    pub id: String,
    pub member_account: AccountId,
    /// The payer directory entry.
    pub payer_id: String,
    /// The member or subscriber id on the old card.
    pub member_id: String,
    pub coverage_start: Option<Date>,
    pub coverage_end: Option<Date>,
    /// The previous plan still covers them (concurrent coverage: asked again every quarter).
    pub concurrent: bool,
    pub opt_in: OptIn,
    pub opted_at: Option<i64>,
    pub opt_in_channel: Option<ConsentChannel>,
    /// Who recorded the opt-in (a staff member's username, `member`, or `roster`).
    pub opt_in_recorded_by: Option<String>,
    /// The Consent the opt-in gave.
    pub consent_id: Option<String>,
    /// When this plan next asks (none: not due).
    pub next_request_at: Option<i64>,
    pub last_request_id: Option<String>,
    /// The last export's `transactionTime`: the next request asks only for what changed since.
    pub last_exported_at: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct CoverageRow {
    id: String,
    member_account: i64,
    payer_id: String,
    member_id: String,
    coverage_start: Option<String>,
    coverage_end: Option<String>,
    concurrent: bool,
    opt_in: OptIn,
    opted_at: Option<i64>,
    opt_in_channel: Option<ConsentChannel>,
    opt_in_recorded_by: Option<String>,
    consent_id: Option<String>,
    next_request_at: Option<i64>,
    last_request_id: Option<String>,
    last_exported_at: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CoverageRow> for PreviousCoverage {
    type Error = StoreError;

    fn try_from(row: CoverageRow) -> Result<Self, StoreError> {
        let parse = |field: &str, text: Option<String>| {
            text.map(|t| {
                day::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("coverage {}: {field} {t:?}", row.id)))
            })
            .transpose()
        };
        Ok(PreviousCoverage {
            coverage_start: parse("coverage_start", row.coverage_start.clone())?,
            coverage_end: parse("coverage_end", row.coverage_end.clone())?,
            id: row.id,
            member_account: AccountId(row.member_account),
            payer_id: row.payer_id,
            member_id: row.member_id,
            concurrent: row.concurrent,
            opt_in: row.opt_in,
            opted_at: row.opted_at,
            opt_in_channel: row.opt_in_channel,
            opt_in_recorded_by: row.opt_in_recorded_by,
            consent_id: row.consent_id,
            next_request_at: row.next_request_at,
            last_request_id: row.last_request_id,
            last_exported_at: row.last_exported_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COVERAGE_COLUMNS: &str = "id, member_account, payer_id, member_id, coverage_start, coverage_end, \
     concurrent, opt_in, opted_at, opt_in_channel, opt_in_recorded_by, consent_id, next_request_at, last_request_id, \
     last_exported_at, created_at, updated_at";

fn rows(rows: Vec<CoverageRow>) -> Result<Vec<PreviousCoverage>, StoreError> {
    rows.into_iter().map(PreviousCoverage::try_from).collect()
}

impl Store {
    /// Records a previous coverage: a new one, or the member's coverage at that payer corrected
    /// (one per member and payer). Returns it as stored.
    pub async fn save_previous_coverage(&self, coverage: &PreviousCoverage) -> Result<PreviousCoverage, StoreError> {
        let sql = format!(
            "INSERT INTO previous_coverage ({COVERAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (member_account, payer_id) DO UPDATE SET member_id = excluded.member_id, \
             coverage_start = excluded.coverage_start, coverage_end = excluded.coverage_end, \
             concurrent = excluded.concurrent, opt_in = excluded.opt_in, opted_at = excluded.opted_at, \
             opt_in_channel = excluded.opt_in_channel, opt_in_recorded_by = excluded.opt_in_recorded_by, \
             consent_id = excluded.consent_id, next_request_at = excluded.next_request_at, updated_at = excluded.updated_at \
             RETURNING {COVERAGE_COLUMNS}"
        );
        let c = coverage;
        let row: CoverageRow = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(&c.id)
                .bind(c.member_account.0)
                .bind(&c.payer_id)
                .bind(&c.member_id)
                .bind(c.coverage_start.map(day::format))
                .bind(c.coverage_end.map(day::format))
                .bind(c.concurrent)
                .bind(c.opt_in)
                .bind(c.opted_at)
                .bind(c.opt_in_channel)
                .bind(&c.opt_in_recorded_by)
                .bind(&c.consent_id)
                .bind(c.next_request_at)
                .bind(&c.last_request_id)
                .bind(&c.last_exported_at)
                .bind(c.created_at)
                .bind(c.updated_at)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    pub async fn previous_coverage(&self, id: &str) -> Result<Option<PreviousCoverage>, StoreError> {
        let sql = format!("SELECT {COVERAGE_COLUMNS} FROM previous_coverage WHERE id = $1");
        let row: Option<CoverageRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        row.map(TryInto::try_into).transpose()
    }

    /// A member's previous coverages, the most recently changed first.
    pub async fn previous_coverages(&self, member: AccountId) -> Result<Vec<PreviousCoverage>, StoreError> {
        let sql = format!(
            "SELECT {COVERAGE_COLUMNS} FROM previous_coverage WHERE member_account = $1 ORDER BY updated_at DESC, id"
        );
        rows(on_pool!(self, pool => sqlx::query_as(&sql).bind(member.0).fetch_all(pool).await?))
    }

    /// The previous coverages due at `now` at `payer` (opted in, due, in no unfinished request),
    /// the longest waiting first.
    pub async fn coverages_due(
        &self,
        payer: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreviousCoverage>, StoreError> {
        let sql = format!(
            "SELECT {COVERAGE_COLUMNS} FROM previous_coverage c WHERE c.payer_id = $1 AND c.opt_in = $2 \
             AND c.next_request_at IS NOT NULL AND c.next_request_at <= $3 \
             AND NOT EXISTS (SELECT 1 FROM p2p_request_member m JOIN p2p_request r ON r.id = m.request_id \
                 WHERE m.coverage_id = c.id AND r.state NOT IN ($4, $5, $6)) \
             ORDER BY c.next_request_at, c.id LIMIT $7"
        );
        let [a, b, d] = RequestState::FINISHED;
        rows(on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(payer)
                .bind(OptIn::In)
                .bind(now.millis())
                .bind(a)
                .bind(b)
                .bind(d)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The payers some opted-in coverage is due at, at `now`.
    pub async fn payers_due(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT DISTINCT payer_id FROM previous_coverage WHERE opt_in = $1 \
                 AND next_request_at IS NOT NULL AND next_request_at <= $2 ORDER BY payer_id",
            )
            .bind(OptIn::In)
            .bind(now.millis())
            .fetch_all(pool)
            .await?
        }))
    }

    /// Opted-in coverages not yet asked for whose deadline (`due_before`, from their opt-in or
    /// coverage start) has passed or is near: the members late for the 7-day rule.
    pub async fn coverages_never_requested(&self, limit: u32) -> Result<Vec<PreviousCoverage>, StoreError> {
        let sql = format!(
            "SELECT {COVERAGE_COLUMNS} FROM previous_coverage WHERE opt_in = $1 AND last_request_id IS NULL \
             ORDER BY opted_at, id LIMIT $2"
        );
        rows(on_pool!(self, pool => sqlx::query_as(&sql).bind(OptIn::In).bind(i64::from(limit)).fetch_all(pool).await?))
    }

    /// Sets when a coverage is next asked for (none: never again), with the last export's time.
    pub async fn schedule_coverage(
        &self,
        id: &str,
        next_request_at: Option<i64>,
        last_exported_at: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE previous_coverage SET next_request_at = $1, \
                 last_exported_at = COALESCE($2, last_exported_at), updated_at = $3 WHERE id = $4",
            )
            .bind(next_request_at)
            .bind(last_exported_at)
            .bind(now.millis())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
