//! Writing resources and their search-fact rows (`fhir_identifier`, `fhir_reference`): the hot
//! path of a transfer, which commits a page of about a thousand resources at a time.
//!
//! Three things keep it fast:
//!
//! - **Bodies are prepared before the transaction** ([`prepare_writes`]): `meta` set and the JSON
//!   serialised while no connection is held.
//! - **New resources need no version lookup.** Each batch is first inserted as version 1 with
//!   `ON CONFLICT DO NOTHING`; only the rows that already existed (a re-run, a Provenance that
//!   came with two searches, a resource updated since) take the slower path: look up their
//!   version, serialise again with the next one, upsert, and replace their index rows. The
//!   outcome is the same as looking every row up first.
//! - **Few statement texts.** On SQLite a batch is cut into multi-row statements of a few fixed
//!   sizes ([`SQLITE_SHAPES`]), so each connection prepares a handful of texts once and reuses
//!   them; a text per batch size was prepared, and cached by sqlx, once per page — slow, and
//!   the cache of large statements grew the process by tens of megabytes. On PostgreSQL each
//!   table takes one statement over arrays (`UNNEST`), whatever the number of rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;
use sqlx::{PgConnection, SqliteConnection};

use crate::sql::{Arg, Dialect, SqlBuilder};
use crate::{ResourceWrite, StoreError, StoredResource, Timestamp};

/// A write ready for SQL: versioned, body serialised. The JSON tree of the body is dropped
/// once serialised (`write.body` is `null`): a page's trees are several times the size of
/// its text, and the few updates re-read their text instead.
#[derive(Debug)]
pub(crate) struct PreparedWrite {
    write: ResourceWrite,
    version_id: i64,
    /// The row it replaces (its `seq`), when it already existed.
    existing_seq: Option<i64>,
    body: String,
    security: String,
}

impl PreparedWrite {
    pub(crate) fn resource_type(&self) -> &str {
        &self.write.resource_type
    }

    pub(crate) fn id(&self) -> &str {
        &self.write.id
    }
}

/// Keeps the last write of each (type, id) — one statement cannot touch a row twice — sets
/// `meta` for version 1 and serialises every body. Runs before any connection is taken.
pub(crate) fn prepare_writes(writes: Vec<ResourceWrite>, now: Timestamp) -> Result<Vec<PreparedWrite>, StoreError> {
    dedupe(writes)
        .into_iter()
        .map(|mut write| {
            let mut tree = std::mem::take(&mut write.body);
            let body = versioned_body(&write, &mut tree, 1, now)?;
            drop(tree);
            let security = write.security.join("\n");
            Ok(PreparedWrite { write, version_id: 1, existing_seq: None, body, security })
        })
        .collect()
}

/// What a batch wrote, and what it refused.
#[derive(Debug)]
pub(crate) struct Written {
    /// As stored, in the order given.
    pub stored: Vec<StoredResource>,
    /// Writes of a record that belongs to another member here: not written.
    pub refused: Vec<ResourceWrite>,
}

/// Where a batch of writes comes from, when a transfer brought it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteOrigin<'a> {
    /// The transfer (`origin_transfer`: the latest transfer that wrote the record).
    pub transfer: Option<&'a str>,
    /// The permission (consent id) it came under: added to the record's `permissions`.
    pub permission: Option<&'a str>,
}

/// Writes prepared resources and their index rows inside the caller's open transaction;
/// returns them as stored, in the order given.
pub(crate) trait WriteResources {
    fn write_resources<'a>(
        &'a mut self,
        batch: Vec<PreparedWrite>,
        now: Timestamp,
        origin: WriteOrigin<'a>,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a;

    /// The one rule of sensitive Provenance, on every write path: a Provenance that names a
    /// sensitive record as its target is sensitive too — it would say who recorded what, and
    /// when, about care the reader may not see. Applied after `stored` were written, in both
    /// directions (a Provenance written after its target, a target written after a
    /// Provenance naming it) and onwards (a Provenance of such a Provenance); the flags of
    /// `stored` are brought up to date.
    ///
    /// `custodian_checked`: the batch is a transfer page, whose own Provenance of what arrived
    /// (no source) the engine already split by sensitivity.
    fn mark_sensitive_provenance<'a>(
        &'a mut self,
        stored: &'a mut [StoredResource],
        custodian_checked: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// Runs the rule's rounds on one connection of `$dialect`.
macro_rules! run_provenance_rule {
    ($conn:expr, $dialect:expr, $stored:expr, $custodian_checked:expr) => {{
        const DIALECT: Dialect = $dialect;
        let stored: &mut [StoredResource] = $stored;
        let mut rule = ProvenanceRule::new(DIALECT);
        let mut statements = rule.first(stored, $custodian_checked);
        while !statements.is_empty() {
            let mut marked = vec![];
            for statement in &statements {
                let rows: Vec<(String, String)> =
                    crate::sql::bind_args!(sqlx::query_as, statement).fetch_all(&mut *$conn).await?;
                marked.extend(rows);
            }
            statements = rule.next(marked);
        }
        rule.apply(stored);
        Ok(())
    }};
}

/// `seq` by resource type, then id (looked up with borrowed keys).
#[derive(Default)]
struct Seqs(HashMap<String, HashMap<String, i64>>);

impl Seqs {
    fn insert(&mut self, resource_type: String, id: String, seq: i64) {
        self.0.entry(resource_type).or_default().insert(id, seq);
    }

    fn get(&self, write: &ResourceWrite) -> Option<i64> {
        self.0.get(&write.resource_type)?.get(&write.id).copied()
    }

    fn of(&self, write: &ResourceWrite) -> Result<i64, StoreError> {
        self.get(write).ok_or_else(|| StoreError::Corrupt(format!("no row for {}/{}", write.resource_type, write.id)))
    }
}

macro_rules! resource_insert {
    () => {
        "INSERT INTO fhir_resource (resource_type, id, version_id, last_updated, member_account, patient_id, \
         source_system, source_id, security, sensitive, date_start, date_end, origin_transfer, permissions, body) "
    };
}
const RESOURCE_INSERT: &str = resource_insert!();
const RESOURCE_COLUMNS: usize = 15;
/// The optimistic insert: rows that exist already are left for the upsert, which never moves a
/// record from one member to another (a previous plan naming another member's record gets it
/// refused, see [`Written::refused`]). The conflict target
/// is named so that only that key is probed before each insert: `seq` is generated, and a
/// resource's source key (`fhir_resource_source`) fixes its id, so no other key can clash
/// alone (if one did, the insert fails rather than skip the row).
const ON_CONFLICT_SKIP: &str = " ON CONFLICT (resource_type, id) DO NOTHING RETURNING resource_type, id, seq";
const ON_CONFLICT_UPDATE: &str = " ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
     last_updated = excluded.last_updated, member_account = excluded.member_account, \
     patient_id = excluded.patient_id, source_system = excluded.source_system, \
     source_id = excluded.source_id, security = excluded.security, sensitive = excluded.sensitive, \
     date_start = excluded.date_start, date_end = excluded.date_end, \
     origin_transfer = excluded.origin_transfer, body = excluded.body, deleted_at = NULL, \
     permissions = CASE WHEN excluded.permissions = '' \
         OR (' ' || fhir_resource.permissions || ' ') LIKE ('% ' || excluded.permissions || ' %') \
         THEN fhir_resource.permissions WHEN fhir_resource.permissions = '' THEN excluded.permissions \
         ELSE fhir_resource.permissions || ' ' || excluded.permissions END \
     WHERE fhir_resource.member_account IS NOT DISTINCT FROM excluded.member_account \
     RETURNING resource_type, id, seq";
const INDEX_TABLES: [&str; 2] = ["fhir_identifier", "fhir_reference"];

mod postgres;
mod provenance;
mod sqlite;

use provenance::ProvenanceRule;

/// Takes out of `batch` the writes that got no row (the upsert refused them).
fn take_refused(batch: &mut Vec<PreparedWrite>, seqs: &Seqs) -> Vec<ResourceWrite> {
    let (kept, refused): (Vec<PreparedWrite>, Vec<PreparedWrite>) =
        std::mem::take(batch).into_iter().partition(|p| seqs.get(&p.write).is_some());
    *batch = kept;
    refused.into_iter().map(|p| p.write).collect()
}

/// A write that found its row already there: the next version, its body serialised again.
fn reversion(p: &mut PreparedWrite, version: Option<i64>, seq: Option<i64>, now: Timestamp) -> Result<(), StoreError> {
    p.existing_seq = seq;
    if let Some(version) = version {
        p.version_id = version + 1;
        // serde_json reads back what it wrote exactly, so only `meta` changes.
        let mut tree: Value = serde_json::from_str(&p.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        p.body = versioned_body(&p.write, &mut tree, p.version_id, now)?;
    }
    Ok(())
}

fn stored(batch: Vec<PreparedWrite>, seqs: &Seqs, now: Timestamp) -> Result<Vec<StoredResource>, StoreError> {
    batch
        .into_iter()
        .map(|p| {
            let seq = seqs.of(&p.write)?;
            let w = p.write;
            Ok(StoredResource {
                seq,
                resource_type: w.resource_type,
                id: w.id,
                version_id: p.version_id,
                last_updated: now,
                member_account: w.member_account.map(|a| a.0),
                patient_id: w.patient_id,
                source_system: w.source_system,
                source_id: w.source_id,
                security: p.security,
                sensitive: w.sensitive,
                deleted_at: None,
                body: p.body,
            })
        })
        .collect()
}

/// Keeps the last write of each (type, id), in the order of those last writes.
fn dedupe(writes: Vec<ResourceWrite>) -> Vec<ResourceWrite> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        last.insert((w.resource_type.as_str(), w.id.as_str()), i);
    }
    if last.len() == writes.len() {
        return writes;
    }
    let keep: Vec<bool> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| last.get(&(w.resource_type.as_str(), w.id.as_str())) == Some(&i))
        .collect();
    writes.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|(w, _)| w).collect()
}

/// Writes `meta.versionId` and `meta.lastUpdated` into `body` (of `write`) and serialises it.
fn versioned_body(
    write: &ResourceWrite,
    body: &mut Value,
    version_id: i64,
    at: Timestamp,
) -> Result<String, StoreError> {
    let object = body.as_object_mut().ok_or_else(|| {
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
    serde_json::to_string(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}
