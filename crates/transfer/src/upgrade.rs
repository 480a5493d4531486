//! One-time upgrades of what earlier versions of Baton stored.

use baton_store::{Rename, StoreError};

use crate::Engine;
use crate::ingest::source_prefix;

/// Records received before record ids were opaque kept ids made from the previous plan's own
/// (`…-heldout-hiv`): they get the opaque id a transfer gives them now, everywhere they are
/// named, so that a new pull updates them in place.
pub const OPAQUE_RECORD_IDS: &str = "opaque-record-ids";

/// Received records renamed per transaction.
const BATCH: i64 = 500;

impl Engine {
    /// Runs the upgrades this database has not had; returns how many records were renamed.
    /// Safe to run at every start (and by several instances at once: a rename finds a record
    /// renamed already and leaves it).
    pub async fn upgrade_stored_records(&self) -> Result<u64, StoreError> {
        let store = &self.store;
        if store.upgrade_done(OPAQUE_RECORD_IDS).await? {
            return Ok(0);
        }
        let ids = self.record_ids().await?;
        let (mut after, mut renamed) = (0, 0);
        loop {
            let batch = store.received_records(after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            let renames: Vec<Rename> = batch
                .into_iter()
                .filter_map(|r| {
                    let base = &r.source_system;
                    let to = ids.local_id(&source_prefix(base), base, &r.resource_type, &r.source_id);
                    (to != r.id).then(|| Rename { resource_type: r.resource_type, from: r.id, to })
                })
                .collect();
            if !renames.is_empty() {
                renamed += renames.len() as u64;
                store.rename_records(&renames).await?;
            }
        }
        store.mark_upgrade_done(OPAQUE_RECORD_IDS).await?;
        if renamed > 0 {
            tracing::info!(renamed, "records received before record ids were opaque have their opaque id now");
        }
        Ok(renamed)
    }
}
