//! Which permissions brought a record (`fhir_resource.permissions`), and deleting what a
//! withdrawn permission alone brought.
//!
//! A record brought under several permissions (the member brought their records from the same
//! plan twice) belongs to each of them. Deleting one permission's records takes that
//! permission off every record it brought, and deletes only the received records no other
//! permission holds any more — a directory entry (a care provider) only when no remaining
//! record names it either. This plan's own records (the member's Patient, the Organizations
//! naming the two plans) are never deleted; its custodian Provenance of a transfer is.
//!
//! Each step is one statement over a batch of rows (take the permission off, then delete what
//! holds none), so a transfer that brings the same record under another permission meanwhile
//! either comes first — and the record stays — or after, and writes it again: a record is never
//! deleted while another permission holds it. Permission ids are Baton's own UUIDs (`[0-9a-f-]`),
//! so they need no escaping in `LIKE`.

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
    /// Of which, per resource type.
    pub kept_by_type: BTreeMap<String, u64>,
    /// Directory entries it brought (care providers, organizations: no member's own) that stay
    /// because other members' records, or records of the member's that stay, name them.
    pub shared: u64,
}

/// A record that names the permission.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    seq: i64,
    resource_type: String,
    source_system: Option<String>,
    origin_transfer: Option<String>,
    permissions: String,
}

impl Candidate {
    /// Received from another plan, or this plan's Provenance of a transfer: what a member may
    /// ask to delete. This plan's own records stay.
    fn deletable(&self) -> bool {
        self.source_system.is_some() || (self.resource_type == "Provenance" && self.origin_transfer.is_some())
    }
}

/// Candidates per round trip.
const BATCH: i64 = 500;
const CANDIDATE_COLUMNS: &str = "seq, resource_type, source_system, origin_transfer, permissions";

/// Which records a pass looks at: the member's own, then directory entries (no member) from
/// the plans the permission's links reached — after the member's records that named them went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Member,
    Directory,
}

/// `(' ' || permissions || ' ') LIKE '% <id> %'`, with the pattern as the next argument.
fn names(sql: &mut SqlBuilder, column: &str, permission: &str) {
    sql.push(&format!(" AND (' ' || {column} || ' ') LIKE ")).arg(Arg::Text(format!("% {permission} %")));
}

/// The next batch of records of `pass` naming `permission`, by `seq` (indexed either way).
fn candidates(pass: Pass, member: AccountId, permission: &str, after_seq: i64) -> SqlBuilder {
    let mut sql = SqlBuilder::new(&format!("SELECT {CANDIDATE_COLUMNS} FROM fhir_resource WHERE deleted_at IS NULL"));
    match pass {
        Pass::Member => {
            sql.push(" AND member_account = ").arg(Arg::I64(member.0));
        }
        Pass::Directory => {
            sql.push(" AND member_account IS NULL AND source_system IN (SELECT fhir_base FROM payer_link WHERE consent_id = ")
                .arg(Arg::Text(permission.to_owned()))
                .push(")");
        }
    }
    names(&mut sql, "permissions", permission);
    sql.push(" AND seq > ").arg(Arg::I64(after_seq)).push(" ORDER BY seq LIMIT ").arg(Arg::I64(BATCH));
    sql
}

/// A directory entry stays while a live record that is not going with this permission names it
/// (this plan's Provenance of a transfer does not count).
fn still_named(sql: &mut SqlBuilder, permission: &str) {
    sql.push(
        " AND NOT EXISTS (SELECT 1 FROM fhir_reference f JOIN fhir_resource s ON s.seq = f.resource_seq \
         WHERE f.target_type = fhir_resource.resource_type AND f.target_id = fhir_resource.id \
         AND s.deleted_at IS NULL AND s.permissions <> ",
    )
    .arg(Arg::Text(permission.to_owned()))
    .push(" AND NOT (s.resource_type = 'Provenance' AND s.source_system IS NULL AND s.origin_transfer IS NOT NULL))");
}

fn seq_list(sql: &mut SqlBuilder, seqs: &[i64]) {
    sql.push(" seq IN (");
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(Arg::I64(*seq));
    }
    sql.push(")");
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
        for pass in [Pass::Member, Pass::Directory] {
            let mut after = 0;
            loop {
                let sql = candidates(pass, member, permission, after);
                let batch: Vec<Candidate> =
                    on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
                let Some(last) = batch.last() else { break };
                after = last.seq;
                let named = match pass {
                    Pass::Member => HashSet::new(),
                    Pass::Directory => self.still_named(&batch, permission).await?,
                };
                for candidate in &batch {
                    let left = remaining(&candidate.permissions, permission);
                    let goes = candidate.deletable() && left.is_empty() && !named.contains(&candidate.seq);
                    tally(&mut outcome, candidate, &left, &own, goes);
                }
            }
        }
        Ok(outcome)
    }

    /// Of a batch of directory entries, those a record that is not going with `permission`
    /// still names.
    async fn still_named(&self, batch: &[Candidate], permission: &str) -> Result<HashSet<i64>, StoreError> {
        let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
        let mut sql = SqlBuilder::new("SELECT seq FROM fhir_resource WHERE");
        seq_list(&mut sql, &seqs);
        sql.push(" AND NOT (1 = 1");
        still_named(&mut sql, permission);
        sql.push(")");
        let named: Vec<i64> = on_pool!(self, pool => bind_args!(sqlx::query_scalar, sql).fetch_all(pool).await?);
        Ok(named.into_iter().collect())
    }

    /// Takes `permission` off every record of `member` it brought, and deletes (without a
    /// tombstone) the received records no other permission holds — and directory entries no
    /// remaining record names. Batch by batch, each in a transaction: a crash halfway leaves
    /// the rest for the next call, which finishes it.
    pub async fn delete_permission_records(
        &self,
        member: AccountId,
        permission: &str,
    ) -> Result<PermissionRecords, StoreError> {
        let own = self.member_permissions(member).await?;
        let mut outcome = PermissionRecords::default();
        for pass in [Pass::Member, Pass::Directory] {
            let mut after = 0;
            loop {
                let sql = candidates(pass, member, permission, after);
                let batch: Vec<Candidate> =
                    on_pool!(@db self.write_db(), pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
                let Some(last) = batch.last() else { break };
                after = last.seq;
                let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
                self.delete_batch(pass, &seqs, permission, &own, &mut outcome).await?;
            }
        }
        // What its transfers noted of the previous plan's ids goes with the records.
        on_pool!(@db self.write_db(), pool => sqlx::query(
            "DELETE FROM transfer_target WHERE transfer_id IN (SELECT t.id FROM transfer t \
             JOIN payer_link l ON l.id = t.link_id WHERE l.consent_id = $1)",
        )
        .bind(permission)
        .execute(pool)
        .await
        .map(drop)?);
        Ok(outcome)
    }

    async fn delete_batch(
        &self,
        pass: Pass,
        seqs: &[i64],
        permission: &str,
        own: &HashSet<String>,
        outcome: &mut PermissionRecords,
    ) -> Result<(), StoreError> {
        // 1. The permission comes off (as the rows are now: a concurrent write is seen).
        let mut strip = SqlBuilder::new("UPDATE fhir_resource SET permissions = TRIM(REPLACE(' ' || permissions || ' ', ");
        strip.arg(Arg::Text(format!(" {permission} "))).push(", ' ')) WHERE");
        seq_list(&mut strip, seqs);
        names(&mut strip, "permissions", permission);
        strip.push(&format!(" RETURNING {CANDIDATE_COLUMNS}"));
        // 2. Received records no permission holds any more go (again as they are now).
        let mut delete = SqlBuilder::new("DELETE FROM fhir_resource WHERE");
        seq_list(&mut delete, seqs);
        delete.push(
            " AND permissions = '' AND (source_system IS NOT NULL \
             OR (resource_type = 'Provenance' AND origin_transfer IS NOT NULL))",
        );
        if pass == Pass::Directory {
            still_named(&mut delete, permission);
        }
        delete.push(" RETURNING seq");
        let (stripped, deleted): (Vec<Candidate>, Vec<i64>) = on_pool!(@db self.write_db(), pool => {
            let mut tx = pool.begin().await?;
            let stripped: Vec<Candidate> = bind_args!(sqlx::query_as, strip).fetch_all(&mut *tx).await?;
            let deleted: Vec<i64> = bind_args!(sqlx::query_scalar, delete).fetch_all(&mut *tx).await?;
            for table in ["fhir_identifier", "fhir_reference"] {
                for seq in &deleted {
                    sqlx::query(&format!("DELETE FROM {table} WHERE resource_seq = $1"))
                        .bind(*seq)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            (stripped, deleted)
        });
        self.written();
        let deleted: HashSet<i64> = deleted.into_iter().collect();
        for candidate in &stripped {
            // `permissions` as returned is what stayed.
            tally(outcome, candidate, &candidate.permissions, own, deleted.contains(&candidate.seq));
        }
        Ok(())
    }
}

/// The permissions a record keeps once `permission` is taken off.
fn remaining(permissions: &str, permission: &str) -> String {
    permissions.split(' ').filter(|p| !p.is_empty() && *p != permission).collect::<Vec<_>>().join(" ")
}

/// Counts what the member knows as records: what came from another plan (this plan's own
/// Provenance of a transfer goes with them, uncounted, as the transfer's counts leave it out).
fn tally(outcome: &mut PermissionRecords, candidate: &Candidate, left: &str, own: &HashSet<String>, goes: bool) {
    if candidate.source_system.is_none() {
        return;
    }
    if goes {
        outcome.deleted += 1;
        *outcome.deleted_by_type.entry(candidate.resource_type.clone()).or_default() += 1;
        if let Some(transfer) = &candidate.origin_transfer {
            *outcome.deleted_by_transfer.entry(transfer.clone()).or_default() += 1;
        }
    } else if left.split(' ').any(|p| own.contains(p)) {
        outcome.kept += 1;
        *outcome.kept_by_type.entry(candidate.resource_type.clone()).or_default() += 1;
    } else {
        outcome.shared += 1;
    }
}
