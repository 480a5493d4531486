//! The FHIR resource store: current versions, with the columns that searches need.

use serde_json::Value;

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::write::{WriteOrigin, WriteResources, prepare_writes};
use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// A resource to create or replace (by `resource_type` + `id`).
///
/// The store assigns `meta.versionId` (1, then +1 on each write) and `meta.lastUpdated`,
/// writing both into `body` before storing it.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    pub resource_type: String,
    pub id: String,
    /// The member this record is about (on the receiving plan).
    pub member_account: Option<AccountId>,
    /// The patient compartment the resource belongs to (a Patient logical id).
    pub patient_id: Option<String>,
    /// Where the resource came from: the source plan's FHIR base URL and its id there.
    pub source_system: Option<String>,
    pub source_id: Option<String>,
    /// `meta.security` codings as `system|code`.
    pub security: Vec<String>,
    /// Labelled or classified sensitive (see `baton-fhir`'s sensitivity rules).
    pub sensitive: bool,
    /// The clinical or service date range, for date search parameters.
    pub date_start: Option<Timestamp>,
    pub date_end: Option<Timestamp>,
    pub identifiers: Vec<IndexedIdentifier>,
    pub references: Vec<IndexedReference>,
    pub body: Value,
}

/// One identifier of a resource, for `identifier=` searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedIdentifier {
    pub system: String,
    pub value: String,
}

/// One reference a resource makes, for `_include` and `_revinclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedReference {
    /// The search parameter it answers to (e.g. `patient`, `target`, `coverage`).
    pub path: String,
    pub target_type: String,
    pub target_id: String,
}

/// A stored resource, as read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredResource {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    #[sqlx(try_from = "i64")]
    pub last_updated: Timestamp,
    pub member_account: Option<i64>,
    pub patient_id: Option<String>,
    pub source_system: Option<String>,
    pub source_id: Option<String>,
    pub security: String,
    pub sensitive: bool,
    /// When it was deleted (a tombstone: the content is gone, reads answer 410).
    pub deleted_at: Option<i64>,
    /// The JSON text, including `meta.versionId` and `meta.lastUpdated`.
    pub body: String,
}

impl From<i64> for Timestamp {
    fn from(millis: i64) -> Self {
        Timestamp::from_millis(millis)
    }
}

impl StoredResource {
    /// The `meta.security` codings as `system|code` strings.
    pub fn security_labels(&self) -> impl Iterator<Item = &str> {
        self.security.lines().filter(|l| !l.is_empty())
    }
}

/// What to search for. Empty lists and `None`s do not filter.
#[derive(Debug, Clone, Default)]
pub struct ResourceQuery {
    pub resource_types: Vec<String>,
    pub patient_id: Option<String>,
    pub member_account: Option<AccountId>,
    pub ids: Vec<String>,
    /// `identifier=[system|]value`.
    pub identifier: Option<IndexedIdentifier>,
    /// Only resources referenced through `path` by one of these (type, id) targets' …
    /// reverse: resources whose reference `path` points at one of `references_to`.
    pub references_to: Vec<(String, String)>,
    pub reference_path: Option<String>,
    /// `lastUpdated >= from` and `lastUpdated < to`.
    pub last_updated_from: Option<Timestamp>,
    pub last_updated_before: Option<Timestamp>,
    /// The resource's date range overlaps `[date_from, date_to]`.
    pub date_from: Option<Timestamp>,
    pub date_to: Option<Timestamp>,
    /// With a date filter, keep resources that have no date at all (for `$everything`).
    pub include_undated: bool,
    /// Only resources outside every patient compartment (directory entries).
    pub no_compartment: bool,
    /// Only resources referenced by a resource in this patient's compartment (not counting
    /// sensitive referrers when `exclude_sensitive`).
    pub referenced_by_patient: Option<String>,
    /// Leave out resources marked sensitive.
    pub exclude_sensitive: bool,
    /// Paging: resources after this `seq` …
    pub after_seq: Option<i64>,
    /// … up to this snapshot bound (`seq` at the first page), so later writes do not shift pages.
    pub snapshot_seq: Option<i64>,
    pub limit: u32,
}

/// One page of results in `seq` order.
#[derive(Debug, Clone)]
pub struct ResourcePage {
    pub resources: Vec<StoredResource>,
    /// The cursor for the next page, when there is one.
    pub next_after_seq: Option<i64>,
    /// The snapshot bound every page of this search uses.
    pub snapshot_seq: i64,
}

const RESOURCE_COLUMNS: &str = "seq, resource_type, id, version_id, last_updated, member_account, \
     patient_id, source_system, source_id, security, sensitive, deleted_at, body";

impl Store {
    /// Creates or replaces resources in one transaction; returns each one as stored. A
    /// Provenance naming a sensitive record is stored sensitive (and one naming a record
    /// written sensitive now becomes so), as on every write path.
    pub async fn put_resources(&self, writes: Vec<ResourceWrite>) -> Result<Vec<StoredResource>, StoreError> {
        let now = Timestamp::now();
        let batch = prepare_writes(writes, now)?;
        on_pool!(@db self.write_db(), pool => {
            let mut tx = pool.begin().await?;
            let written = (*tx).write_resources(batch, now, WriteOrigin::default()).await?;
            if let Some(refused) = written.refused.first() {
                tx.rollback().await?;
                return Err(StoreError::Invalid(format!(
                    "{}/{} belongs to another member: it cannot be written as this one's",
                    refused.resource_type, refused.id
                )));
            }
            let mut stored = written.stored;
            (*tx).mark_sensitive_provenance(&mut stored, false).await?;
            tx.commit().await?;
            self.written();
            Ok(stored)
        })
    }

    /// Reads the current version of one resource (a tombstone if it was deleted).
    pub async fn read_resource(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM fhir_resource WHERE resource_type = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(resource_type).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Deletes a resource: its content is erased and a tombstone kept, so that reads answer
    /// 410 Gone and searches no longer find it. Returns whether a live resource was deleted.
    pub async fn delete_resource(&self, resource_type: &str, id: &str) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let tombstone = serde_json::json!({
            "resourceType": resource_type,
            "id": id,
            "meta": {"lastUpdated": now.to_fhir_instant()}
        })
        .to_string();
        Ok(on_pool!(self, pool => {
            sqlx::query(
                "UPDATE fhir_resource SET deleted_at = $1, last_updated = $1, version_id = version_id + 1, body = $2, \
                 security = '', sensitive = $3 WHERE resource_type = $4 AND id = $5 AND deleted_at IS NULL",
            )
            .bind(now.millis())
            .bind(&tombstone)
            .bind(false)
            .bind(resource_type)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        }))
    }

    /// One page of a search, in `seq` order, bounded by the snapshot of the first page.
    pub async fn search_resources(&self, query: &ResourceQuery) -> Result<ResourcePage, StoreError> {
        let snapshot_seq = match query.snapshot_seq {
            Some(seq) => seq,
            None => self.max_resource_seq().await?,
        };
        let limit = query.limit.clamp(1, 10_000);
        let targets = self.named_targets(query).await?;
        if targets.as_ref().is_some_and(Vec::is_empty) {
            return Ok(ResourcePage { resources: vec![], next_after_seq: None, snapshot_seq });
        }
        let mut sql = SqlBuilder::new(&format!("SELECT {RESOURCE_COLUMNS} FROM fhir_resource r WHERE "));
        push_filters(&mut sql, query, snapshot_seq, targets.as_deref());
        sql.push(" ORDER BY r.seq LIMIT ").arg(Arg::I64(i64::from(limit) + 1));
        let mut resources: Vec<StoredResource> = on_pool!(self, pool => {
            bind_args!(sqlx::query_as, sql).fetch_all(pool).await?
        });
        let next_after_seq = if resources.len() > limit as usize {
            resources.truncate(limit as usize);
            resources.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(ResourcePage { resources, next_after_seq, snapshot_seq })
    }

    /// How many resources a search matches (ignores `after_seq` and `limit`).
    pub async fn count_resources(&self, query: &ResourceQuery) -> Result<u64, StoreError> {
        let snapshot_seq = match query.snapshot_seq {
            Some(seq) => seq,
            None => self.max_resource_seq().await?,
        };
        let counting = ResourceQuery { after_seq: None, ..query.clone() };
        let targets = self.named_targets(query).await?;
        if targets.as_ref().is_some_and(Vec::is_empty) {
            return Ok(0);
        }
        let mut sql = SqlBuilder::new("SELECT COUNT(*) FROM fhir_resource r WHERE ");
        push_filters(&mut sql, &counting, snapshot_seq, targets.as_deref());
        let count: i64 = on_pool!(self, pool => {
            bind_args!(sqlx::query_scalar, sql).fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// For `referenced_by_patient`: what the member's records name (type, id), read from the
    /// member's side — their compartment's references — first. Asked the other way round (each
    /// directory entry: does one of its referrers belong to this member?), an entry every member
    /// names, such as the plan's Organization, costs a look at all its referrers for every member
    /// (measured: 0.3–0.5 s a member at 1,000 members, against 2 ms this way). `None`: no such
    /// filter, or too many targets to list (then the filter is a subquery).
    async fn named_targets(&self, query: &ResourceQuery) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let Some(patient) = &query.referenced_by_patient else { return Ok(None) };
        let mut sql = SqlBuilder::new(
            "SELECT DISTINCT f.target_type, f.target_id FROM fhir_resource s JOIN fhir_reference f \
             ON f.resource_seq = s.seq WHERE s.deleted_at IS NULL AND s.patient_id = ",
        );
        sql.arg(Arg::Text(patient.clone()));
        if query.exclude_sensitive {
            sql.push(" AND s.sensitive = ").arg(Arg::Bool(false));
        }
        sql.push(
            " AND NOT (s.resource_type = 'Provenance' AND s.source_system IS NULL AND s.origin_transfer IS NOT NULL)",
        );
        let targets: Vec<(String, String)> = on_pool!(self, pool => {
            bind_args!(sqlx::query_as, sql).fetch_all(pool).await?
        });
        Ok((targets.len() <= MAX_LISTED_TARGETS).then_some(targets))
    }

    /// The highest `seq` written so far (0 for an empty store).
    pub async fn max_resource_seq(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(seq) FROM fhir_resource").fetch_one(pool).await?
        });
        Ok(max.unwrap_or(0))
    }
}

/// The most (type, id) pairs a query lists as parameters (two each).
const MAX_LISTED_TARGETS: usize = 5_000;

fn push_filters(sql: &mut SqlBuilder, query: &ResourceQuery, snapshot_seq: i64, targets: Option<&[(String, String)]>) {
    sql.push("r.deleted_at IS NULL AND r.seq <= ").arg(Arg::I64(snapshot_seq));
    if let Some(after) = query.after_seq {
        sql.push(" AND r.seq > ").arg(Arg::I64(after));
    }
    if !query.resource_types.is_empty() {
        sql.push(" AND r.resource_type IN ").text_list(query.resource_types.iter().map(String::as_str));
    }
    if let Some(patient) = &query.patient_id {
        sql.push(" AND r.patient_id = ").arg(Arg::Text(patient.clone()));
    }
    if let Some(member) = query.member_account {
        sql.push(" AND r.member_account = ").arg(Arg::I64(member.0));
    }
    if !query.ids.is_empty() {
        sql.push(" AND r.id IN ").text_list(query.ids.iter().map(String::as_str));
    }
    if let Some(identifier) = &query.identifier {
        sql.push(" AND EXISTS (SELECT 1 FROM fhir_identifier i WHERE i.resource_seq = r.seq AND i.value = ")
            .arg(Arg::Text(identifier.value.clone()));
        if !identifier.system.is_empty() {
            sql.push(" AND i.system = ").arg(Arg::Text(identifier.system.clone()));
        }
        sql.push(")");
    }
    if !query.references_to.is_empty() {
        sql.push(" AND EXISTS (SELECT 1 FROM fhir_reference f WHERE f.resource_seq = r.seq");
        if let Some(path) = &query.reference_path {
            sql.push(" AND f.path = ").arg(Arg::Text(path.clone()));
        }
        sql.push(" AND (");
        for (i, (target_type, target_id)) in query.references_to.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(f.target_type = ")
                .arg(Arg::Text(target_type.clone()))
                .push(" AND f.target_id = ")
                .arg(Arg::Text(target_id.clone()))
                .push(")");
        }
        sql.push("))");
    }
    if let Some(from) = query.last_updated_from {
        sql.push(" AND r.last_updated >= ").arg(Arg::I64(from.millis()));
    }
    if let Some(before) = query.last_updated_before {
        sql.push(" AND r.last_updated < ").arg(Arg::I64(before.millis()));
    }
    if query.date_from.is_some() || query.date_to.is_some() {
        sql.push(" AND (");
        if query.include_undated {
            sql.push("(r.date_start IS NULL AND r.date_end IS NULL) OR (");
        }
        sql.push("1 = 1");
        if let Some(from) = query.date_from {
            sql.push(" AND COALESCE(r.date_end, r.date_start) >= ").arg(Arg::I64(from.millis()));
        }
        if let Some(to) = query.date_to {
            sql.push(" AND COALESCE(r.date_start, r.date_end) <= ").arg(Arg::I64(to.millis()));
        }
        if query.include_undated {
            sql.push(")");
        }
        sql.push(")");
    }
    if query.exclude_sensitive {
        sql.push(" AND r.sensitive = ").arg(Arg::Bool(false));
    }
    if query.no_compartment {
        sql.push(" AND r.patient_id IS NULL");
    }
    if let Some(targets) = targets {
        sql.push(" AND (r.resource_type, r.id) IN (VALUES ");
        for (i, (target_type, target_id)) in targets.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .arg(Arg::Text(target_type.clone()))
                .push(", ")
                .arg(Arg::Text(target_id.clone()))
                .push(")");
        }
        sql.push(")");
    } else if let Some(patient) = &query.referenced_by_patient {
        sql.push(
            " AND EXISTS (SELECT 1 FROM fhir_reference f JOIN fhir_resource s ON s.seq = f.resource_seq \
             WHERE f.target_type = r.resource_type AND f.target_id = r.id AND s.deleted_at IS NULL AND s.patient_id = ",
        )
        .arg(Arg::Text(patient.clone()));
        if query.exclude_sensitive {
            sql.push(" AND s.sensitive = ").arg(Arg::Bool(false));
        }
        // This plan's own Provenance of a transfer lists what arrived, directory entries that
        // only sensitive care names included: it does not make them the member's.
        sql.push(
            " AND NOT (s.resource_type = 'Provenance' AND s.source_system IS NULL AND s.origin_transfer IS NOT NULL))",
        );
    }
}
