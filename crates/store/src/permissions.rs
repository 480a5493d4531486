//! Which permissions brought a record (`fhir_resource.permissions`), and deleting what a
//! withdrawn permission alone brought.
//!
//! A record brought under several permissions (the member brought their records from the same
//! plan twice) belongs to each of them. Deleting one permission's records takes that
//! permission off every record it brought, and deletes only the received records no other
//! permission holds any more. This plan's own records (the member's Patient, the Organizations
//! naming the two plans) are never deleted; its custodian Provenance of a transfer is.

use std::collections::{BTreeMap, HashSet};

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{AccountId, Store, StoreError, on_pool};

/// What deleting a permission's records does (or, before it is confirmed, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionRecords {
    /// Records deleted (or to delete): brought under this permission alone.
    pub deleted: u64,
    /// Of which, per resource type.
    pub deleted_by_type: BTreeMap<String, u64>,
    /// Per transfer that last wrote them.
    pub deleted_by_transfer: BTreeMap<String, u64>,
    /// Records it brought that stay, because another permission of the same member brought
    /// them too.
    pub kept: u64,
    /// Directory entries it brought (care providers, organizations: no member's own) that stay
    /// because other members' records name them too.
    pub shared: u64,
}

/// One record that names the permission.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    seq: i64,
    resource_type: String,
    source_system: Option<String>,
    origin_transfer: Option<String>,
    permissions: String,
}

impl Candidate {
    /// The permissions it keeps once `permission` is taken off.
    fn remaining(&self, permission: &str) -> String {
        self.permissions.split(' ').filter(|p| !p.is_empty() && *p != permission).collect::<Vec<_>>().join(" ")
    }

    /// Received from another plan, or this plan's Provenance of a transfer: what a member may
    /// ask to delete. This plan's own records stay.
    fn deletable(&self) -> bool {
        self.source_system.is_some() || (self.resource_type == "Provenance" && self.origin_transfer.is_some())
    }
}

/// Candidates per round trip.
const BATCH: i64 = 500;

/// The records that name `permission`: the member's own, and directory entries (no member)
/// from the plans the permission's links reached.
fn candidates(member: AccountId, permission: &str, after_seq: i64) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT seq, resource_type, source_system, origin_transfer, permissions FROM fhir_resource \
         WHERE deleted_at IS NULL AND seq > ",
    );
    sql.arg(Arg::I64(after_seq)).push(" AND (' ' || permissions || ' ') LIKE ");
    sql.arg(Arg::Text(format!("% {permission} %"))).push(" AND (member_account = ");
    sql.arg(Arg::I64(member.0)).push(
        " OR (member_account IS NULL AND source_system IN \
         (SELECT fhir_base FROM payer_link WHERE consent_id = ",
    );
    sql.arg(Arg::Text(permission.to_owned())).push("))) ORDER BY seq LIMIT ");
    sql.arg(Arg::I64(BATCH));
    sql
}

impl Store {
    /// The member's permissions (consent ids), withdrawn or not.
    async fn member_permissions(&self, member: AccountId) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM member_consent WHERE member_account = $1").bind(member.0).fetch_all(pool).await?
        });
        Ok(ids.into_iter().collect())
    }

    /// What [`Store::delete_permission_records`] would delete and keep, without changing
    /// anything (for the member to confirm).
    pub async fn permission_records(
        &self,
        member: AccountId,
        permission: &str,
    ) -> Result<PermissionRecords, StoreError> {
        let own = self.member_permissions(member).await?;
        let mut outcome = PermissionRecords::default();
        let mut after = 0;
        loop {
            let sql = candidates(member, permission, after);
            let batch: Vec<Candidate> = on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for candidate in &batch {
                tally(&mut outcome, candidate, permission, &own);
            }
        }
        Ok(outcome)
    }

    /// Takes `permission` off every record of `member` it brought, and deletes (without a
    /// tombstone) the received records no other permission brought. Batch by batch, each in a
    /// transaction: a crash halfway leaves the rest for the next call.
    pub async fn delete_permission_records(
        &self,
        member: AccountId,
        permission: &str,
    ) -> Result<PermissionRecords, StoreError> {
        let own = self.member_permissions(member).await?;
        let mut outcome = PermissionRecords::default();
        let mut after = 0;
        loop {
            let sql = candidates(member, permission, after);
            let batch: Vec<Candidate> =
                on_pool!(@db self.write_db(), pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
            let Some(last) = batch.last() else { break };
            after = last.seq;
            on_pool!(@db self.write_db(), pool => {
                let mut tx = pool.begin().await?;
                for candidate in &batch {
                    let remaining = candidate.remaining(permission);
                    if remaining.is_empty() && candidate.deletable() {
                        for table in ["fhir_identifier", "fhir_reference"] {
                            sqlx::query(&format!("DELETE FROM {table} WHERE resource_seq = $1"))
                                .bind(candidate.seq)
                                .execute(&mut *tx)
                                .await?;
                        }
                        sqlx::query("DELETE FROM fhir_resource WHERE seq = $1").bind(candidate.seq).execute(&mut *tx).await?;
                    } else {
                        sqlx::query("UPDATE fhir_resource SET permissions = $1 WHERE seq = $2")
                            .bind(&remaining)
                            .bind(candidate.seq)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tally(&mut outcome, candidate, permission, &own);
                }
                tx.commit().await?;
            });
            self.written();
        }
        Ok(outcome)
    }
}

/// Counts what the member knows as records: what came from another plan (this plan's own
/// Provenance of a transfer goes with them, uncounted, as the transfer's counts leave it out).
fn tally(outcome: &mut PermissionRecords, candidate: &Candidate, permission: &str, own: &HashSet<String>) {
    if candidate.source_system.is_none() {
        return;
    }
    let remaining = candidate.remaining(permission);
    if remaining.is_empty() {
        outcome.deleted += 1;
        *outcome.deleted_by_type.entry(candidate.resource_type.clone()).or_default() += 1;
        if let Some(transfer) = &candidate.origin_transfer {
            *outcome.deleted_by_transfer.entry(transfer.clone()).or_default() += 1;
        }
    } else if remaining.split(' ').any(|p| own.contains(p)) {
        outcome.kept += 1;
    } else {
        outcome.shared += 1;
    }
}
