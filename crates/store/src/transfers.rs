//! Consents, links to previous plans, and transfers: durable jobs leased by workers.
//!
//! A worker claims a job (`claim_transfer`), then commits each page it fetched together with
//! its checkpoint in one transaction (`commit_transfer_page`), which also proves it still holds
//! the lease. A worker that dies stops renewing its lease; when the lease runs out another
//! worker claims the job and resumes from the last committed checkpoint, so nothing is counted
//! twice and nothing is lost. On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so several
//! Baton instances share the queue.

use serde::{Deserialize, Serialize};

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::write::{PreparedWrite, WriteOrigin, WriteResources, prepare_writes};
use crate::{AccountId, Backend, ResourceWrite, Store, StoreError, StoredResource, Timestamp, on_pool};

/// A member's consent to bring their records from a previous plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MemberConsent {
    pub id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    pub payer_id: String,
    /// `regular` (sensitive data excluded) or `sensitive` (included).
    pub policy: String,
    pub period_start: i64,
    pub period_end: i64,
    pub given_at: i64,
    pub channel: String,
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
}

impl MemberConsent {
    /// In force at `now`: not withdrawn, and inside its period.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.withdrawn_at.is_none() && self.period_start <= now.millis() && now.millis() <= self.period_end
    }
}

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
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the previous plan said about sensitive information when it granted access; `None`
    /// when it did not say.
    pub source_sensitive: Option<baton_vocab::SensitiveSharing>,
}

/// Transfer states.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    pub const NEEDS_REAUTHORIZATION: &str = "needs_reauthorization";
    /// States a transfer does not leave by itself.
    pub const FINISHED: [&str; 4] = [COMPLETED, FAILED, CANCELLED, NEEDS_REAUTHORIZATION];
}

/// A transfer job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Transfer {
    pub id: String,
    pub link_id: String,
    #[sqlx(try_from = "i64")]
    pub member_account: AccountId,
    pub kind: String,
    pub since: Option<i64>,
    pub state: String,
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

const TRANSFER_COLUMNS: &str = "id, link_id, member_account, kind, since, state, checkpoint, progress, resources_stored, \
     pages_done, error, lease_owner, lease_until, attempts, run_after, created_at, started_at, finished_at, updated_at";
const LINK_COLUMNS: &str = "id, member_account, payer_id, consent_id, fhir_base, patient_id, scope, include_sensitive, \
     access_token, access_expires_at, refresh_token, id_token, state, created_at, updated_at, source_sensitive";
/// Targets per statement of [`Store::dangling_references_to`] (two parameters each).
const DANGLING_TARGETS_PER_QUERY: usize = 250;
const CONSENT_COLUMNS: &str = "id, member_account, payer_id, policy, period_start, period_end, given_at, channel, resource, \
     withdrawn_at, created_at, records_deleted, records_kept, records_shared";

/// One request made to a previous plan (for the audit; the URL never carries a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferRequest {
    pub at: i64,
    pub method: String,
    pub url: String,
    pub status: Option<i32>,
    pub duration_ms: i64,
    pub bytes: i64,
    pub error: Option<String>,
}

/// A resource a transfer brought, without its body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferredResource {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub source_system: Option<String>,
}

/// An event of a transfer's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferEvent {
    pub at: i64,
    pub kind: String,
    pub detail: String,
}

/// A received resource that could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferRejection {
    pub at: i64,
    pub source: String,
    pub reason: String,
}

/// See [`Store::page_group_resources`]. Four pages of 1,000: a 100k SQLite pull with UUID ids
/// took ~10.9 s page by page, ~10.5 s with 2,000, ~9.1–9.6 s with 4,000 and ~8.9 s with
/// 8,000 — whose peak RSS passed 150 MB (4,000: ~130 MB, against ~105 MB page by page).
const SQLITE_PAGE_GROUP_RESOURCES: usize = 4_000;

/// Everything one page of a transfer changes, committed at once.
#[derive(Debug, Clone, Default)]
pub struct TransferPage {
    pub transfer_id: String,
    pub owner: String,
    /// The lease is renewed to this.
    pub lease_until: Timestamp,
    pub resources: Vec<ResourceWrite>,
    pub checkpoint: String,
    pub progress: String,
    pub pages_done: i64,
    pub rejected: Vec<(String, String)>,
    pub requests: Vec<TransferRequest>,
    pub events: Vec<(String, String)>,
    /// The permission (member consent) the transfer runs under: every record it writes
    /// belongs to it ([`Store::delete_permission_records`]).
    pub permission: Option<String>,
    /// Records its records name that the transfer has not written (yet), with their ids at
    /// the previous plan ([`Store::transfer_target_sources`]).
    pub targets: Vec<TransferTarget>,
}

/// A record a transfer's records refer to, by its id here and at the previous plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTarget {
    pub target_type: String,
    pub target_id: String,
    pub source_id: String,
}

/// A [`TransferPage`] whose resources are versioned (as new) and serialised, ready for one
/// transaction: preparing is CPU work that needs no connection, so a caller can do it while
/// the previous page is still being written.
#[derive(Debug)]
pub struct PreparedTransferPage {
    /// The page, its resources taken out.
    page: TransferPage,
    batch: Vec<PreparedWrite>,
    stored_count: i64,
    /// `meta.lastUpdated` of its resources and the time of its rows.
    now: Timestamp,
}

impl TransferPage {
    /// Versions and serialises the page's resources (see [`PreparedTransferPage`]).
    pub fn prepare(mut self) -> Result<PreparedTransferPage, StoreError> {
        let now = Timestamp::now();
        let resources = std::mem::take(&mut self.resources);
        let stored_count = resources.len() as i64;
        let batch = prepare_writes(resources, now)?;
        Ok(PreparedTransferPage { page: self, batch, stored_count, now })
    }
}

impl PreparedTransferPage {
    /// Resources to write.
    pub fn resources(&self) -> usize {
        self.batch.len()
    }

    /// Joins the next page of the same transfer to this one, for one transaction: its
    /// resources are prepared now, with this page's time, and replace any of this page's
    /// writes of the same resource (the later page is the newer copy); its rejections,
    /// requests and events are added; its checkpoint, progress and lease are the group's.
    /// Committed, the group leaves the records, checkpoint, counts and audit that committing
    /// the pages one after the other would (a resource in both is written once).
    pub fn absorb(&mut self, mut later: TransferPage) -> Result<(), StoreError> {
        if later.transfer_id != self.page.transfer_id
            || later.owner != self.page.owner
            || later.permission != self.page.permission
        {
            return Err(StoreError::Invalid("only pages of one transfer and worker can be committed together".into()));
        }
        let resources = std::mem::take(&mut later.resources);
        let count = resources.len() as i64;
        let batch = prepare_writes(resources, self.now)?;
        let replaced: std::collections::HashSet<(&str, &str)> =
            batch.iter().map(|p| (p.resource_type(), p.id())).collect();
        self.batch.retain(|p| !replaced.contains(&(p.resource_type(), p.id())));
        self.batch.extend(batch);
        self.stored_count += count;
        let page = &mut self.page;
        page.lease_until = later.lease_until;
        page.checkpoint = later.checkpoint;
        page.progress = later.progress;
        page.pages_done += later.pages_done;
        page.rejected.append(&mut later.rejected);
        page.requests.append(&mut later.requests);
        page.events.append(&mut later.events);
        page.targets.append(&mut later.targets);
        Ok(())
    }
}

/// Why a page could not be committed.
#[derive(Debug)]
pub enum CommitError {
    /// Another worker holds the job now (this one's lease ran out), or it was cancelled.
    LeaseLost,
    /// The page before it, committed alongside, did not commit: so neither does this one.
    PreviousPageFailed,
    Store(StoreError),
}

impl From<StoreError> for CommitError {
    fn from(error: StoreError) -> Self {
        CommitError::Store(error)
    }
}

impl From<sqlx::Error> for CommitError {
    fn from(error: sqlx::Error) -> Self {
        CommitError::Store(error.into())
    }
}

/// Filters for listing transfers.
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub states: Vec<String>,
    pub member_account: Option<AccountId>,
    pub link_id: Option<String>,
    pub payer_id: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub sort: TransferSort,
    pub limit: u32,
    pub offset: u32,
}

/// Orders of a transfer list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferSort {
    #[default]
    NewestFirst,
    OldestFirst,
    /// Most recently finished first; unfinished last.
    RecentlyFinished,
    /// Most resources received first.
    MostReceived,
}

impl TransferSort {
    fn order_by(self) -> &'static str {
        match self {
            TransferSort::NewestFirst => "t.created_at DESC, t.id",
            TransferSort::OldestFirst => "t.created_at ASC, t.id",
            TransferSort::RecentlyFinished => {
                "CASE WHEN t.finished_at IS NULL THEN 1 ELSE 0 END, t.finished_at DESC, t.id"
            }
            TransferSort::MostReceived => "t.resources_stored DESC, t.created_at DESC, t.id",
        }
    }
}

/// A transfer with who it is for and which plan it is from, for lists.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferRow {
    #[sqlx(flatten)]
    pub transfer: Transfer,
    pub member_name: String,
    pub payer_id: String,
}

/// When a transfer started and finished and how, for the dashboard's chart.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferTimes {
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub state: String,
}

impl Store {
    pub async fn insert_consent(&self, consent: &MemberConsent) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!("INSERT INTO member_consent ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"))
                .bind(&consent.id)
                .bind(consent.member_account.0)
                .bind(&consent.payer_id)
                .bind(&consent.policy)
                .bind(consent.period_start)
                .bind(consent.period_end)
                .bind(consent.given_at)
                .bind(&consent.channel)
                .bind(&consent.resource)
                .bind(consent.withdrawn_at)
                .bind(consent.created_at)
                .bind(consent.records_deleted)
                .bind(consent.records_kept)
                .bind(consent.records_shared)
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
        let withdrawn = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE member_consent SET withdrawn_at = $1 WHERE id = $2 AND withdrawn_at IS NULL")
                .bind(at.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE payer_link SET state = 'revoked', access_token = NULL, refresh_token = NULL, id_token = NULL, updated_at = $1 WHERE consent_id = $2")
                .bind(at.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE transfer SET state = 'cancelled', error = 'The member withdrew their consent.', finished_at = $1, \
                 updated_at = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE state IN ('queued', 'running') AND link_id IN (SELECT id FROM payer_link WHERE consent_id = $2)",
            )
            .bind(at.millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            changed
        });
        Ok(withdrawn > 0)
    }

    /// Records what deleting a withdrawn consent's records did.
    pub async fn set_consent_deletion(&self, id: &str, records: &crate::PermissionRecords) -> Result<(), StoreError> {
        let n = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        on_pool!(self, pool => {
            sqlx::query("UPDATE member_consent SET records_deleted = $1, records_kept = $2, records_shared = $3 WHERE id = $4")
                .bind(n(records.deleted))
                .bind(n(records.kept))
                .bind(n(records.shared))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn insert_link(&self, link: &PayerLink) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "INSERT INTO payer_link ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
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
            .bind(&link.state)
            .bind(link.created_at)
            .bind(link.updated_at)
            .bind(link.source_sensitive)
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
                 refresh_token = COALESCE($3, refresh_token), state = 'active', updated_at = $4 WHERE id = $5",
            )
            .bind(access_token)
            .bind(access_expires_at)
            .bind(refresh_token)
            .bind(at.millis())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn set_link_state(&self, id: &str, state: &str, at: Timestamp) -> Result<(), StoreError> {
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

    /// Queues a transfer; returns its id.
    pub async fn enqueue_transfer(
        &self,
        id: &str,
        link: &PayerLink,
        kind: &str,
        since: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO transfer (id, link_id, member_account, kind, since, state, checkpoint, progress, run_after, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', '{}', '{}', $6, $6, $6)",
            )
            .bind(id)
            .bind(&link.id)
            .bind(link.member_account.0)
            .bind(kind)
            .bind(since.map(Timestamp::millis))
            .bind(at.millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, 'queued', $3)")
                .bind(id)
                .bind(at.millis())
                .bind(kind)
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
        let pick = "SELECT id FROM transfer WHERE (state = 'queued' AND run_after <= $3) \
                    OR (state = 'running' AND lease_until < $3) ORDER BY run_after, created_at LIMIT 1";
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE transfer SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
             started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = ({pick}{lock}) RETURNING {TRANSFER_COLUMNS}"
        );
        let claimed: Option<Transfer> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(owner).bind(lease_until.millis()).bind(now.millis()).fetch_optional(pool).await?
        });
        if let Some(transfer) = &claimed {
            self.add_transfer_event(
                &transfer.id,
                now,
                "claimed",
                &format!("worker {owner}, attempt {}", transfer.attempts),
            )
            .await?;
        }
        Ok(claimed)
    }

    /// Renews the lease; `false` if this worker no longer holds the job.
    pub async fn renew_lease(&self, id: &str, owner: &str, lease_until: Timestamp) -> Result<bool, StoreError> {
        let renewed = on_pool!(self, pool => {
            sqlx::query("UPDATE transfer SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'")
                .bind(lease_until.millis())
                .bind(id)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renewed == 1)
    }

    /// Commits one page: its resources, the checkpoint after it, progress, rejections, the
    /// requests made and events — all or nothing, and only while `owner` holds the lease.
    pub async fn commit_transfer_page(&self, page: TransferPage) -> Result<Vec<StoredResource>, CommitError> {
        self.commit_prepared_page(page.prepare()?).await
    }

    /// Commits a page prepared with [`TransferPage::prepare`] (see [`Store::commit_transfer_page`]).
    pub async fn commit_prepared_page(&self, page: PreparedTransferPage) -> Result<Vec<StoredResource>, CommitError> {
        self.commit_prepared_page_after(page, std::future::ready(true)).await
    }

    /// How many page commits of one transfer may be in flight at once (see
    /// [`Store::commit_prepared_page_after`]): two on PostgreSQL, where a second connection
    /// writes the next page's resources while the first commits; one on SQLite, whose single
    /// writer connection takes transactions one at a time anyway.
    pub fn page_commits_in_flight(&self) -> usize {
        match self.write_db() {
            crate::Db::Sqlite(_) => 1,
            crate::Db::Postgres(_) => 2,
        }
    }

    /// Up to how many resources pages that arrive while a commit is running may gather into
    /// one transaction ([`PreparedTransferPage::absorb`]), so that the writer, once free, writes
    /// them at once. On SQLite a transaction writes every index page it changed into the log
    /// once: with ids that land all over an index (UUIDs), a page of 1,000 resources changes
    /// thousands of pages of the reference and key indexes, most of which the next page changes
    /// again. On PostgreSQL, which logs rows, not pages, pages are not grouped (0).
    pub fn page_group_resources(&self) -> usize {
        match self.write_db() {
            crate::Db::Sqlite(_) => SQLITE_PAGE_GROUP_RESOURCES,
            crate::Db::Postgres(_) => 0,
        }
    }

    /// Commits a page whose predecessor may still be committing: its resources and audit rows
    /// are written at once, then `previous` — whether the page before it committed — is awaited
    /// before the checkpoint moves, so checkpoints still land in page order. When the page
    /// before did not commit, this one is rolled back ([`CommitError::PreviousPageFailed`]).
    ///
    /// Pages in flight together must not write the same resource: the later one's insert
    /// would wait inside its transaction for the earlier one, which could be waiting for the
    /// later one's rows — a cycle the database cannot see, which only the transaction's
    /// bounded lock wait would end. The engine commits such pages one after the other. Where
    /// only one page commits at a time (SQLite's single writer), `previous` is awaited first,
    /// so that this page does not hold the writer while the one before waits for it.
    pub async fn commit_prepared_page_after(
        &self,
        page: PreparedTransferPage,
        previous: impl Future<Output = bool> + Send,
    ) -> Result<Vec<StoredResource>, CommitError> {
        let PreparedTransferPage { page, batch, stored_count, now } = page;
        let mut previous = std::pin::pin!(previous);
        let mut previous_committed = None;
        if self.page_commits_in_flight() == 1 {
            previous_committed = Some(previous.as_mut().await);
            if previous_committed == Some(false) {
                return Err(CommitError::PreviousPageFailed);
            }
        }
        on_pool!(@db self.write_db(), pool => {
            let mut tx = pool.begin().await?;
            if DIALECT == crate::sql::Dialect::Postgres {
                // This transaction may wait for the page before it while holding row locks; a
                // writer outside the transfer caught between the two would wait on a cycle
                // the database cannot see. A bounded lock wait turns that into an error.
                sqlx::query("SET LOCAL lock_timeout = '60s'").execute(&mut *tx).await?;
            }
            let origin = WriteOrigin { transfer: Some(page.transfer_id.as_str()), permission: page.permission.as_deref() };
            let mut stored = (*tx).write_resources(batch, now, origin).await?;
            let id = page.transfer_id.as_str();
            for rows in page.rejected.chunks(500) {
                let mut insert = SqlBuilder::new("INSERT INTO transfer_rejected (transfer_id, at, source, reason) VALUES ");
                insert.rows(rows.iter().map(|(source, reason)| {
                    vec![Arg::Text(id.to_owned()), Arg::I64(now.millis()), Arg::Text(source.clone()), Arg::Text(reason.clone())]
                }));
                bind_args!(sqlx::query, insert).execute(&mut *tx).await?;
            }
            for rows in page.requests.chunks(500) {
                let mut insert = SqlBuilder::new(
                    "INSERT INTO transfer_request (transfer_id, at, method, url, status, duration_ms, bytes, error) VALUES ",
                );
                insert.rows(rows.iter().map(|r| {
                    vec![
                        Arg::Text(id.to_owned()),
                        Arg::I64(r.at),
                        Arg::Text(r.method.clone()),
                        Arg::Text(r.url.clone()),
                        Arg::OptI64(r.status.map(i64::from)),
                        Arg::I64(r.duration_ms),
                        Arg::I64(r.bytes),
                        Arg::OptText(r.error.clone()),
                    ]
                }));
                bind_args!(sqlx::query, insert).execute(&mut *tx).await?;
            }
            for rows in page.targets.chunks(500) {
                let mut insert = SqlBuilder::new(
                    "INSERT INTO transfer_target (transfer_id, target_type, target_id, source_id) VALUES ",
                );
                insert.rows(rows.iter().map(|t| {
                    vec![
                        Arg::Text(id.to_owned()),
                        Arg::Text(t.target_type.clone()),
                        Arg::Text(t.target_id.clone()),
                        Arg::Text(t.source_id.clone()),
                    ]
                }));
                insert.push(" ON CONFLICT DO NOTHING");
                bind_args!(sqlx::query, insert).execute(&mut *tx).await?;
            }
            for rows in page.events.chunks(500) {
                let mut insert = SqlBuilder::new("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ");
                insert.rows(rows.iter().map(|(kind, detail)| {
                    vec![Arg::Text(id.to_owned()), Arg::I64(now.millis()), Arg::Text(kind.clone()), Arg::Text(detail.clone())]
                }));
                bind_args!(sqlx::query, insert).execute(&mut *tx).await?;
            }
            let committed = match previous_committed {
                Some(committed) => committed,
                None => previous.as_mut().await,
            };
            if !committed {
                tx.rollback().await?;
                return Err(CommitError::PreviousPageFailed);
            }
            // After the page before committed, so that a Provenance it wrote is seen here when
            // this page brings the sensitive record it names (and the other way round).
            (*tx).mark_sensitive_provenance(&mut stored).await?;
            // Last, so that the transfer's row is locked only while this transaction commits.
            let held = sqlx::query(
                "UPDATE transfer SET checkpoint = $1, progress = $2, resources_stored = resources_stored + $3, \
                 pages_done = pages_done + $4, lease_until = $5, updated_at = $6 \
                 WHERE id = $7 AND lease_owner = $8 AND state = 'running'",
            )
            .bind(&page.checkpoint)
            .bind(&page.progress)
            .bind(stored_count)
            .bind(page.pages_done)
            .bind(page.lease_until.millis())
            .bind(now.millis())
            .bind(&page.transfer_id)
            .bind(&page.owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held != 1 {
                tx.rollback().await?;
                return Err(CommitError::LeaseLost);
            }
            tx.commit().await?;
            self.written();
            Ok(stored)
        })
    }

    /// Ends a transfer this worker holds: completed, failed (with why), needs reauthorization
    /// or cancelled. `false` if it no longer held it.
    pub async fn finish_transfer(
        &self,
        id: &str,
        owner: &str,
        final_state: &str,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let finished = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE transfer SET state = $1, error = $2, finished_at = $3, updated_at = $3, lease_owner = NULL, \
                 lease_until = NULL WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
            )
            .bind(final_state)
            .bind(error)
            .bind(at.millis())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(at.millis())
                    .bind(final_state)
                    .bind(error.unwrap_or(""))
                    .execute(&mut *tx)
                    .await?;
                if final_state == state::COMPLETED {
                    // Only a run that did not finish may still need them (a retry resumes it).
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
                "UPDATE transfer SET state = 'queued', run_after = $1, lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
            )
            .bind(run_after.millis())
            .bind(now.millis())
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if released == 1 {
            self.add_transfer_event(id, now, "paused", reason).await?;
        }
        Ok(released == 1)
    }

    /// Staff or operator action: a finished transfer runs again from its checkpoint.
    pub async fn retry_transfer(&self, id: &str, by: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE transfer SET state = 'queued', error = NULL, run_after = $1, finished_at = NULL, updated_at = $1 \
                 WHERE id = $2 AND state IN ('failed', 'cancelled', 'needs_reauthorization')",
            )
            .bind(at.millis())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            self.add_transfer_event(id, at, "retry", by).await?;
        }
        Ok(changed == 1)
    }

    /// Staff or operator action: a queued or running transfer is cancelled (a running worker
    /// notices at its next commit).
    pub async fn cancel_transfer(&self, id: &str, by: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE transfer SET state = 'cancelled', error = $1, finished_at = $2, updated_at = $2, lease_owner = NULL, \
                 lease_until = NULL WHERE id = $3 AND state IN ('queued', 'running')",
            )
            .bind(format!("Cancelled by {by}."))
            .bind(at.millis())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            self.add_transfer_event(id, at, "cancelled", by).await?;
        }
        Ok(changed == 1)
    }

    pub async fn transfer(&self, id: &str) -> Result<Option<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn list_transfers(&self, filter: &TransferFilter) -> Result<Vec<Transfer>, StoreError> {
        Ok(self.list_transfer_rows(filter).await?.into_iter().map(|row| row.transfer).collect())
    }

    /// Transfers matching `filter`, with the member's name and the previous plan.
    pub async fn list_transfer_rows(&self, filter: &TransferFilter) -> Result<Vec<TransferRow>, StoreError> {
        let columns = TRANSFER_COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let mut sql = SqlBuilder::new(&format!(
            "SELECT {columns}, a.display_name AS member_name, l.payer_id AS payer_id FROM transfer t \
             JOIN account a ON a.id = t.member_account JOIN payer_link l ON l.id = t.link_id WHERE 1 = 1"
        ));
        if !filter.states.is_empty() {
            sql.push(" AND t.state IN ").text_list(filter.states.iter().map(String::as_str));
        }
        if let Some(member) = filter.member_account {
            sql.push(" AND t.member_account = ").arg(Arg::I64(member.0));
        }
        if let Some(link) = &filter.link_id {
            sql.push(" AND t.link_id = ").arg(Arg::Text(link.clone()));
        }
        if let Some(payer) = &filter.payer_id {
            sql.push(" AND l.payer_id = ").arg(Arg::Text(payer.clone()));
        }
        if let Some(from) = filter.created_from {
            sql.push(" AND t.created_at >= ").arg(Arg::I64(from.millis()));
        }
        if let Some(before) = filter.created_before {
            sql.push(" AND t.created_at < ").arg(Arg::I64(before.millis()));
        }
        sql.push(" ORDER BY ")
            .push(filter.sort.order_by())
            .push(" LIMIT ")
            .arg(Arg::I64(i64::from(filter.limit.clamp(1, 1000))))
            .push(" OFFSET ")
            .arg(Arg::I64(i64::from(filter.offset)));
        Ok(on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?))
    }

    /// How many transfers are in each state.
    pub async fn transfer_state_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM transfer GROUP BY state ORDER BY state").fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(state, n)| (state, u64::try_from(n).unwrap_or(0))).collect())
    }

    /// Transfers created or finished at or after `since`, for per-day charts.
    pub async fn transfer_times_since(&self, since: Timestamp) -> Result<Vec<TransferTimes>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at, finished_at, state FROM transfer WHERE created_at >= $1 OR finished_at >= $1",
            )
            .bind(since.millis())
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn add_transfer_event(
        &self,
        id: &str,
        at: Timestamp,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(at.millis())
                .bind(kind)
                .bind(detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn transfer_events(&self, id: &str) -> Result<Vec<TransferEvent>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT at, kind, detail FROM transfer_event WHERE transfer_id = $1 ORDER BY at, kind")
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn transfer_requests(&self, id: &str) -> Result<Vec<TransferRequest>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at, method, url, status, duration_ms, bytes, error FROM transfer_request WHERE transfer_id = $1 ORDER BY at",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn transfer_rejections(&self, id: &str) -> Result<Vec<TransferRejection>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT at, source, reason FROM transfer_rejected WHERE transfer_id = $1 ORDER BY at")
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// What a transfer brought (for its Provenance), in order: ids only, no bodies.
    pub async fn resources_of_transfer(
        &self,
        id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<TransferredResource>, StoreError> {
        let sql = "SELECT seq, resource_type, id, source_system FROM fhir_resource \
                   WHERE origin_transfer = $1 AND seq > $2 AND deleted_at IS NULL ORDER BY seq LIMIT $3";
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id).bind(after_seq).bind(i64::from(limit)).fetch_all(pool).await?
        }))
    }

    /// How many live resources of each type a transfer brought from `source`.
    pub async fn transfer_type_counts(&self, id: &str, source: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = "SELECT resource_type, COUNT(*) FROM fhir_resource \
                   WHERE origin_transfer = $1 AND source_system = $2 AND deleted_at IS NULL GROUP BY resource_type";
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id).bind(source).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(t, n)| (t, u64::try_from(n).unwrap_or(0))).collect())
    }

    /// Directory entries (no member) a transfer brought from `source` that none of the member's
    /// live records refers to: e.g. the clinician of care the member chose to leave behind. A
    /// transfer's own custodian Provenance (this plan's record of what arrived) does not count.
    pub async fn unreferenced_directory_entries(
        &self,
        transfer_id: &str,
        source: &str,
        member: AccountId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = "SELECT r.resource_type, r.id FROM fhir_resource r WHERE r.origin_transfer = $1 \
                   AND r.source_system = $2 AND r.member_account IS NULL AND r.deleted_at IS NULL AND NOT EXISTS (\
                   SELECT 1 FROM fhir_reference f JOIN fhir_resource s ON s.seq = f.resource_seq \
                   WHERE f.target_type = r.resource_type AND f.target_id = r.id AND s.deleted_at IS NULL \
                   AND (s.member_account = $3 OR s.member_account IS NULL) \
                   AND NOT (s.resource_type = 'Provenance' AND s.source_system IS NULL AND s.origin_transfer IS NOT NULL))";
        Ok(
            on_pool!(self, pool => sqlx::query_as(sql).bind(transfer_id).bind(source).bind(member.0).fetch_all(pool).await?),
        )
    }

    /// Removes a resource and its index rows entirely, leaving no tombstone (for records that
    /// must not remain at all).
    pub async fn purge_resource(&self, resource_type: &str, id: &str) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM fhir_resource WHERE resource_type = $1 AND id = $2")
                .bind(resource_type)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(seq) = seq {
                for table in ["fhir_identifier", "fhir_reference"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE resource_seq = $1")).bind(seq).execute(&mut *tx).await?;
                }
                sqlx::query("DELETE FROM fhir_resource WHERE seq = $1").bind(seq).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            seq.is_some()
        }))
    }

    /// References from a member's records to resources this store does not have: `(referrer
    /// type, referrer id, target type, target id)`.
    pub async fn dangling_references(
        &self,
        member: AccountId,
        limit: u32,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let sql = "SELECT r.resource_type, r.id, f.target_type, f.target_id FROM fhir_reference f \
                   JOIN fhir_resource r ON r.seq = f.resource_seq \
                   WHERE r.member_account = $1 AND r.deleted_at IS NULL AND NOT EXISTS (\
                   SELECT 1 FROM fhir_resource t WHERE t.resource_type = f.target_type AND t.id = f.target_id \
                   AND t.deleted_at IS NULL) ORDER BY r.seq LIMIT $2";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(member.0).bind(i64::from(limit)).fetch_all(pool).await?))
    }

    /// [`Store::dangling_references`], among the references to `targets` only: for a caller
    /// that knows which targets can be missing (a transfer knows what its records named and
    /// did not write), at the cost of a few index reads per target instead of one per
    /// reference of the member's record.
    pub async fn dangling_references_to(
        &self,
        member: AccountId,
        targets: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let mut found = vec![];
        for chunk in targets.chunks(DANGLING_TARGETS_PER_QUERY) {
            let room = i64::from(limit) - found.len() as i64;
            if room <= 0 {
                break;
            }
            let mut sql = SqlBuilder::new("WITH k (t, i) AS (VALUES ");
            sql.rows(chunk.iter().map(|(t, i)| vec![Arg::Text(t.clone()), Arg::Text(i.clone())]));
            sql.push(
                ") SELECT r.resource_type, r.id, f.target_type, f.target_id FROM k \
                 JOIN fhir_reference f ON f.target_type = k.t AND f.target_id = k.i \
                 JOIN fhir_resource r ON r.seq = f.resource_seq \
                 WHERE r.deleted_at IS NULL AND r.member_account = ",
            )
            .arg(Arg::I64(member.0))
            .push(
                " AND NOT EXISTS (SELECT 1 FROM fhir_resource t WHERE t.resource_type = k.t AND t.id = k.i \
                 AND t.deleted_at IS NULL) ORDER BY r.seq LIMIT ",
            )
            .arg(Arg::I64(room));
            let rows: Vec<(String, String, String, String)> =
                on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
            found.extend(rows);
        }
        Ok(found)
    }
}
