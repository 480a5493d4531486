//! The FHIR resource store: current versions, with the columns that searches need.

use serde_json::Value;

use crate::sql::{Arg, SqlBuilder, bind_args};
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
    /// Creates or replaces resources in one transaction; returns each one as stored.
    pub async fn put_resources(&self, writes: Vec<ResourceWrite>) -> Result<Vec<StoredResource>, StoreError> {
        let now = Timestamp::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let stored = write_resources!(&mut *tx, writes, now, None::<String>);
            tx.commit().await?;
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
        let mut sql = SqlBuilder::new(&format!("SELECT {RESOURCE_COLUMNS} FROM fhir_resource r WHERE "));
        push_filters(&mut sql, query, snapshot_seq);
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
        let mut sql = SqlBuilder::new("SELECT COUNT(*) FROM fhir_resource r WHERE ");
        push_filters(&mut sql, &counting, snapshot_seq);
        let count: i64 = on_pool!(self, pool => {
            bind_args!(sqlx::query_scalar, sql).fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The highest `seq` written so far (0 for an empty store).
    pub async fn max_resource_seq(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(seq) FROM fhir_resource").fetch_one(pool).await?
        });
        Ok(max.unwrap_or(0))
    }
}

/// Rows per multi-row statement (SQLite allows 32766 parameters, PostgreSQL 65535).
pub(crate) const WRITE_CHUNK: usize = 400;

/// A write ready for SQL: versioned, body serialized.
pub(crate) struct PreparedWrite {
    pub write: ResourceWrite,
    pub version_id: i64,
    pub existing_seq: Option<i64>,
    pub body: String,
}

/// Writes resources inside an open transaction (`$tx`: `&mut *tx` of either backend), in
/// multi-row statements: one query for the existing versions of a chunk, one upsert, then the
/// index rows. Evaluates to `Vec<StoredResource>` (or returns the error).
macro_rules! write_resources {
    ($tx:expr, $writes:expr, $now:expr, $origin:expr) => {{
        let now: $crate::Timestamp = $now;
        let origin: Option<String> = $origin;
        let writes = $crate::resources::dedupe($writes);
        let mut stored = Vec::with_capacity(writes.len());
        let mut remaining = writes.into_iter();
        loop {
            let chunk: Vec<$crate::ResourceWrite> = remaining.by_ref().take($crate::resources::WRITE_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            // 1. Existing versions (by type, so that the (resource_type, id) index answers).
            let mut by_type: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for w in &chunk {
                by_type.entry(w.resource_type.as_str()).or_default().push(w.id.as_str());
            }
            let mut select =
                $crate::sql::SqlBuilder::new("SELECT resource_type, id, version_id, seq FROM fhir_resource WHERE ");
            for (i, (resource_type, ids)) in by_type.into_iter().enumerate() {
                select.push(if i == 0 { "(resource_type = " } else { " OR (resource_type = " });
                select.arg($crate::sql::Arg::Text(resource_type.to_owned())).push(" AND id IN ");
                select.text_list(ids.into_iter()).push(")");
            }
            let existing: Vec<(String, String, i64, i64)> =
                $crate::sql::bind_args!(sqlx::query_as, select).fetch_all(&mut *$tx).await?;
            let existing: std::collections::HashMap<(String, String), (i64, i64)> =
                existing.into_iter().map(|(t, id, v, seq)| ((t, id), (v, seq))).collect();
            // 2. Versions and bodies.
            let mut prepared = Vec::with_capacity(chunk.len());
            for write in chunk {
                let found = existing.get(&(write.resource_type.clone(), write.id.clone())).copied();
                prepared.push($crate::resources::prepare_write(write, found, now)?);
            }
            // 3. One upsert for the chunk.
            let mut upsert = $crate::sql::SqlBuilder::new(
                "INSERT INTO fhir_resource (resource_type, id, version_id, last_updated, member_account, patient_id, \
                 source_system, source_id, security, sensitive, date_start, date_end, origin_transfer, body) VALUES ",
            );
            upsert.rows(prepared.iter().map(|p| $crate::resources::row(p, now, &origin)));
            upsert.push(
                " ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
                 last_updated = excluded.last_updated, member_account = excluded.member_account, \
                 patient_id = excluded.patient_id, source_system = excluded.source_system, \
                 source_id = excluded.source_id, security = excluded.security, sensitive = excluded.sensitive, \
                 date_start = excluded.date_start, date_end = excluded.date_end, \
                 origin_transfer = excluded.origin_transfer, body = excluded.body, deleted_at = NULL \
                 RETURNING resource_type, id, seq",
            );
            let returned: Vec<(String, String, i64)> =
                $crate::sql::bind_args!(sqlx::query_as, upsert).fetch_all(&mut *$tx).await?;
            let seqs: std::collections::HashMap<(String, String), i64> =
                returned.into_iter().map(|(t, id, seq)| ((t, id), seq)).collect();
            // 4. Index rows: replaced for updated resources.
            let updated: Vec<i64> = prepared.iter().filter_map(|p| p.existing_seq).collect();
            if !updated.is_empty() {
                for table in ["fhir_identifier", "fhir_reference"] {
                    let mut delete =
                        $crate::sql::SqlBuilder::new(&format!("DELETE FROM {table} WHERE resource_seq IN ("));
                    for (i, seq) in updated.iter().enumerate() {
                        if i > 0 {
                            delete.push(", ");
                        }
                        delete.arg($crate::sql::Arg::I64(*seq));
                    }
                    delete.push(")");
                    $crate::sql::bind_args!(sqlx::query, delete).execute(&mut *$tx).await?;
                }
            }
            let mut identifiers = vec![];
            let mut references = vec![];
            for p in &prepared {
                let seq = *seqs.get(&(p.write.resource_type.clone(), p.write.id.clone())).ok_or_else(|| {
                    $crate::StoreError::Corrupt(format!("no row for {}/{}", p.write.resource_type, p.write.id))
                })?;
                for identifier in &p.write.identifiers {
                    identifiers.push(vec![
                        $crate::sql::Arg::I64(seq),
                        $crate::sql::Arg::Text(identifier.system.clone()),
                        $crate::sql::Arg::Text(identifier.value.clone()),
                    ]);
                }
                for reference in &p.write.references {
                    references.push(vec![
                        $crate::sql::Arg::I64(seq),
                        $crate::sql::Arg::Text(reference.path.clone()),
                        $crate::sql::Arg::Text(reference.target_type.clone()),
                        $crate::sql::Arg::Text(reference.target_id.clone()),
                    ]);
                }
            }
            for rows in identifiers.chunks(2000) {
                let mut insert =
                    $crate::sql::SqlBuilder::new("INSERT INTO fhir_identifier (resource_seq, system, value) VALUES ");
                insert.rows(rows.iter().cloned());
                $crate::sql::bind_args!(sqlx::query, insert).execute(&mut *$tx).await?;
            }
            for rows in references.chunks(2000) {
                let mut insert = $crate::sql::SqlBuilder::new(
                    "INSERT INTO fhir_reference (resource_seq, path, target_type, target_id) VALUES ",
                );
                insert.rows(rows.iter().cloned());
                $crate::sql::bind_args!(sqlx::query, insert).execute(&mut *$tx).await?;
            }
            for p in prepared {
                let seq = seqs[&(p.write.resource_type.clone(), p.write.id.clone())];
                stored.push($crate::resources::stored(p, seq, now, &origin));
            }
        }
        stored
    }};
}
pub(crate) use write_resources;

/// Keeps the last write of each (type, id): one statement cannot touch a row twice.
pub(crate) fn dedupe(writes: Vec<ResourceWrite>) -> Vec<ResourceWrite> {
    let mut last: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        last.insert((w.resource_type.clone(), w.id.clone()), i);
    }
    writes
        .into_iter()
        .enumerate()
        .filter(|(i, w)| last.get(&(w.resource_type.clone(), w.id.clone())) == Some(i))
        .map(|(_, w)| w)
        .collect()
}

pub(crate) fn prepare_write(
    mut write: ResourceWrite,
    existing: Option<(i64, i64)>,
    now: Timestamp,
) -> Result<PreparedWrite, StoreError> {
    let version_id = existing.map_or(1, |(v, _)| v + 1);
    set_meta(&mut write, version_id, now)?;
    let body = serde_json::to_string(&write.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(PreparedWrite { write, version_id, existing_seq: existing.map(|(_, seq)| seq), body })
}

pub(crate) fn row(p: &PreparedWrite, now: Timestamp, origin: &Option<String>) -> Vec<Arg> {
    let w = &p.write;
    vec![
        Arg::Text(w.resource_type.clone()),
        Arg::Text(w.id.clone()),
        Arg::I64(p.version_id),
        Arg::I64(now.millis()),
        Arg::OptI64(w.member_account.map(|a| a.0)),
        Arg::OptText(w.patient_id.clone()),
        Arg::OptText(w.source_system.clone()),
        Arg::OptText(w.source_id.clone()),
        Arg::Text(w.security.join("\n")),
        Arg::Bool(w.sensitive),
        Arg::OptI64(w.date_start.map(Timestamp::millis)),
        Arg::OptI64(w.date_end.map(Timestamp::millis)),
        Arg::OptText(origin.clone()),
        Arg::Text(p.body.clone()),
    ]
}

pub(crate) fn stored(p: PreparedWrite, seq: i64, now: Timestamp, origin: &Option<String>) -> StoredResource {
    let _ = origin;
    let w = p.write;
    StoredResource {
        seq,
        security: w.security.join("\n"),
        resource_type: w.resource_type,
        id: w.id,
        version_id: p.version_id,
        last_updated: now,
        member_account: w.member_account.map(|a| a.0),
        patient_id: w.patient_id,
        source_system: w.source_system,
        source_id: w.source_id,
        sensitive: w.sensitive,
        deleted_at: None,
        body: p.body,
    }
}

fn set_meta(write: &mut ResourceWrite, version_id: i64, at: Timestamp) -> Result<(), StoreError> {
    let object = write.body.as_object_mut().ok_or_else(|| {
        StoreError::Corrupt(format!("{}/{}: body is not a JSON object", write.resource_type, write.id))
    })?;
    let meta = object.entry("meta").or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        *meta = Value::Object(Default::default());
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("versionId".into(), Value::String(version_id.to_string()));
        meta.insert("lastUpdated".into(), Value::String(at.to_fhir_instant()));
    }
    Ok(())
}

fn push_filters(sql: &mut SqlBuilder, query: &ResourceQuery, snapshot_seq: i64) {
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
    if let Some(patient) = &query.referenced_by_patient {
        sql.push(
            " AND EXISTS (SELECT 1 FROM fhir_reference f JOIN fhir_resource s ON s.seq = f.resource_seq \
             WHERE f.target_type = r.resource_type AND f.target_id = r.id AND s.deleted_at IS NULL AND s.patient_id = ",
        )
        .arg(Arg::Text(patient.clone()));
        if query.exclude_sensitive {
            sql.push(" AND s.sensitive = ").arg(Arg::Bool(false));
        }
        sql.push(")");
    }
}
