//! What transfers brought: listing and counting it, directory entries nothing refers to,
//! purging, and references that point nowhere.

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{AccountId, Store, StoreError, on_pool};

/// A resource a transfer brought, without its body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferredResource {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub source_system: Option<String>,
}

/// Targets per statement of [`Store::dangling_references_to`] (two parameters each).
const DANGLING_TARGETS_PER_QUERY: usize = 250;

impl Store {
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

    /// The previous plan's ids of the records a transfer brought from `source` (Provenance
    /// aside), after `after_seq`, in order: `(seq, type, id there)`. What a transfer asks the
    /// Provenance of when the plan's `$everything` carried none.
    pub async fn transfer_source_ids(
        &self,
        id: &str,
        source: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let sql = "SELECT seq, resource_type, source_id FROM fhir_resource \
                   WHERE origin_transfer = $1 AND source_system = $2 AND seq > $3 AND deleted_at IS NULL \
                   AND resource_type <> 'Provenance' AND source_id IS NOT NULL ORDER BY seq LIMIT $4";
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id).bind(source).bind(after_seq).bind(i64::from(limit)).fetch_all(pool).await?
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
            // The targets that are missing first, and only their references then: a directory
            // entry every member names has references from each of them, and joining those
            // before knowing it exists read them all (a second a member on PostgreSQL at a
            // thousand members).
            sql.push(
                "), m AS MATERIALIZED (SELECT t, i FROM k WHERE NOT EXISTS (SELECT 1 FROM fhir_resource x \
                 WHERE x.resource_type = k.t AND x.id = k.i AND x.deleted_at IS NULL)) \
                 SELECT r.resource_type, r.id, f.target_type, f.target_id FROM m \
                 JOIN fhir_reference f ON f.target_type = m.t AND f.target_id = m.i \
                 JOIN fhir_resource r ON r.seq = f.resource_seq \
                 WHERE r.deleted_at IS NULL AND r.member_account = ",
            )
            .arg(Arg::I64(member.0))
            .push(" ORDER BY r.seq LIMIT ")
            .arg(Arg::I64(room));
            let rows: Vec<(String, String, String, String)> =
                on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
            found.extend(rows);
        }
        Ok(found)
    }
}
