//! Committing a transfer's pages: each page's resources with its checkpoint, progress and
//! audit rows, in one transaction, while the worker holds the lease.

use baton_vocab::{EventKind, TransferState};

use super::history::TransferRequest;
use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::write::{PreparedWrite, WriteOrigin, WriteResources, prepare_writes};
use crate::{ResourceWrite, Store, StoreError, StoredResource, Timestamp, on_pool};

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
    pub events: Vec<(EventKind, String)>,
    /// The permission (member consent) the transfer runs under: every record it writes
    /// belongs to it ([`Store::delete_permission_records`]).
    pub permission: Option<String>,
    /// Records its records name that the transfer has not written (yet), with their ids at
    /// the previous plan ([`Store::transfer_target_sources`]).
    pub targets: Vec<TransferTarget>,
}

/// A record a transfer's records refer to, by its id here and at the previous plan; or one it
/// left out as sensitive ([`TransferTarget::withheld`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTarget {
    pub target_type: String,
    pub target_id: String,
    /// Empty for a withheld record: it is never fetched.
    pub source_id: String,
    /// Why the transfer left it out (a sensitivity reason's key), when it did.
    pub withheld: Option<String>,
}

impl TransferTarget {
    /// A record left out because it is sensitive and the member said so.
    pub fn withheld(target_type: &str, target_id: &str, reason: String) -> Self {
        Self {
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            source_id: String::new(),
            withheld: Some(reason),
        }
    }
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
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another worker holds the job now (this one's lease ran out), or it was cancelled.
    #[error("another worker holds the transfer now, or it was cancelled")]
    LeaseLost,
    /// The page before it, committed alongside, did not commit: so neither does this one.
    #[error("the page before this one was not saved, so this one was not either")]
    PreviousPageFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CommitError {
    fn from(error: sqlx::Error) -> Self {
        CommitError::Store(error.into())
    }
}

impl Store {
    /// Commits one page: its resources, the checkpoint after it, progress, rejections, the
    /// requests made and events — all or nothing, and only while `owner` holds the lease.
    pub async fn commit_transfer_page(&self, page: TransferPage) -> Result<Vec<StoredResource>, CommitError> {
        self.commit_prepared_page(page.prepare()?).await
    }

    /// Commits a page prepared with [`TransferPage::prepare`] (see [`Store::commit_transfer_page`]).
    pub async fn commit_prepared_page(&self, page: PreparedTransferPage) -> Result<Vec<StoredResource>, CommitError> {
        self.commit_prepared_page_after(page, std::future::ready(true)).await
    }

    /// Whether this store writes one transaction at a time (SQLite's single writer
    /// connection): then two pages of a transfer are never in flight at once, and a page waits
    /// for the one before it *before* it takes the writer.
    pub fn single_writer(&self) -> bool {
        matches!(self.write_db(), crate::Db::Sqlite(_))
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
        if self.single_writer() {
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
            let written = (*tx).write_resources(batch, now, origin).await?;
            let mut stored = written.stored;
            let id = page.transfer_id.as_str();
            // A previous plan named another member's record here: refused, and said why.
            let refused: Vec<(String, String)> = written
                .refused
                .iter()
                .map(|w| {
                    let source = format!("{}/{}", w.resource_type, w.source_id.as_deref().unwrap_or(&w.id));
                    (source, "it is another member's record here; a previous plan cannot change it".to_owned())
                })
                .collect();
            let stored_count = stored_count - refused.len() as i64;
            for rows in page.rejected.chunks(500).chain(refused.chunks(500)) {
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
            for rows in page.events.chunks(500) {
                let mut insert = SqlBuilder::new("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ");
                insert.rows(rows.iter().map(|(kind, detail)| {
                    vec![Arg::Text(id.to_owned()), Arg::I64(now.millis()), Arg::Text(kind.to_string()), Arg::Text(detail.clone())]
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
            // After the page before committed: pages in flight name the same records (a resumed
            // run notes every target again), and an upsert locks the row it meets — written
            // before, a later page could hold a row the earlier one waits for.
            let targets = distinct_targets(&page.targets);
            for rows in targets.chunks(500) {
                let mut insert = SqlBuilder::new(
                    "INSERT INTO transfer_target (transfer_id, target_type, target_id, source_id, withheld) VALUES ",
                );
                insert.rows(rows.iter().map(|t| {
                    vec![
                        Arg::Text(id.to_owned()),
                        Arg::Text(t.target_type.clone()),
                        Arg::Text(t.target_id.clone()),
                        Arg::Text(t.source_id.clone()),
                        Arg::OptText(t.withheld.clone()),
                    ]
                }));
                // Once left out, a record stays so for the transfer (its id there is no longer needed).
                insert.push(
                    " ON CONFLICT (transfer_id, target_type, target_id) DO UPDATE SET \
                     withheld = COALESCE(transfer_target.withheld, excluded.withheld), \
                     source_id = CASE WHEN COALESCE(transfer_target.withheld, excluded.withheld) IS NULL \
                     THEN transfer_target.source_id ELSE '' END",
                );
                bind_args!(sqlx::query, insert).execute(&mut *tx).await?;
            }
            // After the page before committed, so that a Provenance it wrote is seen here when
            // this page brings the sensitive record it names (and the other way round).
            (*tx).mark_sensitive_provenance(&mut stored, true).await?;
            // Last, so that the transfer's row is locked only while this transaction commits.
            let held = sqlx::query(
                "UPDATE transfer SET checkpoint = $1, progress = $2, resources_stored = resources_stored + $3, \
                 pages_done = pages_done + $4, lease_until = $5, updated_at = $6 \
                 WHERE id = $7 AND lease_owner = $8 AND state = $9",
            )
            .bind(&page.checkpoint)
            .bind(&page.progress)
            .bind(stored_count)
            .bind(page.pages_done)
            .bind(page.lease_until.millis())
            .bind(now.millis())
            .bind(&page.transfer_id)
            .bind(&page.owner)
            .bind(TransferState::Running)
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
}

/// One row per target (one statement may not touch a row twice); a record left out anywhere on
/// the page stays left out.
fn distinct_targets(targets: &[TransferTarget]) -> Vec<TransferTarget> {
    let mut by_key: std::collections::BTreeMap<(&str, &str), TransferTarget> = std::collections::BTreeMap::new();
    for target in targets {
        let entry = by_key.entry((&target.target_type, &target.target_id)).or_insert_with(|| target.clone());
        if entry.withheld.is_none() && target.withheld.is_some() {
            *entry = target.clone();
        }
    }
    by_key.into_values().collect()
}
