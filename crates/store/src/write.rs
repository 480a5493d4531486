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

/// The statements of the sensitive-Provenance rule (see
/// [`WriteResources::mark_sensitive_provenance`]), round by round: first the Provenance just
/// written that name a sensitive target, then the Provenance naming anything that became or
/// was written sensitive, until a round marks nothing (or, against a cycle of Provenance,
/// after [`ProvenanceRule::ROUNDS`]).
///
/// On PostgreSQL a row another transaction holds is skipped (`SKIP LOCKED`): two page commits
/// of one transfer run at once, and the later one may have written a Provenance the earlier
/// one would mark while waiting for the earlier one to commit — waiting for its lock would be
/// a cycle. The later one checks what it wrote itself, after the earlier one committed.
struct ProvenanceRule {
    dialect: Dialect,
    marked: std::collections::HashSet<(String, String)>,
    rounds: usize,
}

impl ProvenanceRule {
    const ROUNDS: usize = 8;
    const CHUNK: usize = 400;

    fn new(dialect: Dialect) -> Self {
        Self { dialect, marked: Default::default(), rounds: 0 }
    }

    /// The first round: this batch's Provenance checked against their targets (this plan's own
    /// Provenance of a transfer page names only that page's records, each already known), and
    /// the Provenance naming this batch's sensitive records.
    fn first(&mut self, stored: &[StoredResource], custodian_checked: bool) -> Vec<SqlBuilder> {
        let provenance: Vec<i64> = stored
            .iter()
            .filter(|r| r.resource_type == "Provenance" && !r.sensitive)
            .filter(|r| !(custodian_checked && r.source_system.is_none()))
            .map(|r| r.seq)
            .collect();
        let sensitive: Vec<(String, String)> =
            stored.iter().filter(|r| r.sensitive).map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        let mut statements: Vec<SqlBuilder> =
            provenance.chunks(Self::CHUNK).map(|seqs| with_sensitive_target(seqs, self.dialect)).collect();
        statements.extend(sensitive.chunks(Self::CHUNK).map(|targets| naming(targets, self.dialect)));
        statements
    }

    /// The next round, from what the last one marked.
    fn next(&mut self, marked: Vec<(String, String)>) -> Vec<SqlBuilder> {
        self.rounds += 1;
        let new: Vec<(String, String)> = marked.into_iter().filter(|k| self.marked.insert(k.clone())).collect();
        if self.rounds >= Self::ROUNDS {
            return vec![];
        }
        new.chunks(Self::CHUNK).map(|targets| naming(targets, self.dialect)).collect()
    }

    fn apply(self, stored: &mut [StoredResource]) {
        for resource in stored.iter_mut() {
            if self.marked.contains(&(resource.resource_type.clone(), resource.id.clone())) {
                resource.sensitive = true;
            }
        }
    }
}

/// Rows a statement of the rule may change: on PostgreSQL, not those another transaction holds.
fn unlocked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " FOR UPDATE OF r SKIP LOCKED",
        Dialect::Sqlite => "",
    }
}

/// Marks those of `seqs` (Provenance) that name a live sensitive target.
fn with_sensitive_target(seqs: &[i64], dialect: Dialect) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "UPDATE fhir_resource SET sensitive = TRUE WHERE seq IN (SELECT r.seq FROM fhir_resource r \
         WHERE r.sensitive = FALSE AND r.seq IN (",
    );
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(Arg::I64(*seq));
    }
    sql.push(
        ") AND EXISTS (SELECT 1 FROM fhir_reference f JOIN fhir_resource t \
         ON t.resource_type = f.target_type AND t.id = f.target_id \
         WHERE f.resource_seq = r.seq AND f.path = 'target' AND t.sensitive = TRUE AND t.deleted_at IS NULL)",
    )
    .push(unlocked(dialect))
    .push(") RETURNING resource_type, id");
    sql
}

/// Marks the live Provenance that name one of `targets`.
fn naming(targets: &[(String, String)], dialect: Dialect) -> SqlBuilder {
    let mut sql = SqlBuilder::new("WITH k (t, i) AS (VALUES ");
    sql.rows(targets.iter().map(|(t, i)| vec![Arg::Text(t.clone()), Arg::Text(i.clone())]));
    sql.push(
        ") UPDATE fhir_resource SET sensitive = TRUE WHERE seq IN (SELECT r.seq FROM fhir_resource r \
         WHERE r.resource_type = 'Provenance' AND r.sensitive = FALSE AND r.deleted_at IS NULL \
         AND r.seq IN (SELECT f.resource_seq FROM k JOIN fhir_reference f \
         ON f.target_type = k.t AND f.target_id = k.i WHERE f.path = 'target')",
    )
    .push(unlocked(dialect))
    .push(") RETURNING resource_type, id");
    sql
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

/// Rows per multi-row statement on SQLite, largest first (at most 256 × 15 = 3,840 parameters,
/// well under SQLite's 32,766). A batch of n rows takes at most n / 256 + 12 statements.
pub(crate) const SQLITE_SHAPES: [usize; 5] = [256, 64, 16, 4, 1];

/// `rows` cut into slices of [`SQLITE_SHAPES`] sizes, largest first.
pub(crate) fn sqlite_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = SQLITE_SHAPES.iter().copied().find(|&s| s <= rows.len())?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// A multi-row SQLite statement whose texts, one per size of [`SQLITE_SHAPES`], are made once
/// per process (building them for every chunk of every page was a few percent of a commit).
pub(crate) struct SqliteStatement {
    head: &'static str,
    columns: usize,
    tail: &'static str,
    texts: OnceLock<[String; SQLITE_SHAPES.len()]>,
}

impl SqliteStatement {
    pub(crate) const fn new(head: &'static str, columns: usize, tail: &'static str) -> Self {
        Self { head, columns, tail, texts: OnceLock::new() }
    }

    /// The text for `rows` rows: made once for the sizes of [`SQLITE_SHAPES`], else now.
    pub(crate) fn text(&self, rows: usize) -> Cow<'_, str> {
        let texts =
            self.texts.get_or_init(|| SQLITE_SHAPES.map(|n| sqlite_values(self.head, self.columns, n, self.tail)));
        match SQLITE_SHAPES.iter().position(|&n| n == rows) {
            Some(i) => Cow::Borrowed(texts[i].as_str()),
            None => Cow::Owned(sqlite_values(self.head, self.columns, rows, self.tail)),
        }
    }
}

static NEW_RESOURCES: SqliteStatement =
    SqliteStatement::new(concat!(resource_insert!(), "VALUES "), RESOURCE_COLUMNS, ON_CONFLICT_SKIP);
static UPSERT_RESOURCES: SqliteStatement =
    SqliteStatement::new(concat!(resource_insert!(), "VALUES "), RESOURCE_COLUMNS, ON_CONFLICT_UPDATE);
static NEW_IDENTIFIERS: SqliteStatement =
    SqliteStatement::new("INSERT INTO fhir_identifier (resource_seq, system, value) VALUES ", 3, "");
static NEW_REFERENCES: SqliteStatement =
    SqliteStatement::new("INSERT INTO fhir_reference (resource_seq, path, target_type, target_id) VALUES ", 4, "");

/// `head` + `(?, …), (?, …)` for `rows` rows of `columns` anonymous placeholders + `tail`.
pub(crate) fn sqlite_values(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * (columns * 3 + 2));
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            sql.push_str(if column == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type SqliteQueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>;

impl WriteResources for SqliteConnection {
    async fn mark_sensitive_provenance<'a>(
        &'a mut self,
        stored: &'a mut [StoredResource],
        custodian_checked: bool,
    ) -> Result<(), StoreError> {
        run_provenance_rule!(self, Dialect::Sqlite, stored, custodian_checked)
    }

    async fn write_resources<'a>(
        &'a mut self,
        mut batch: Vec<PreparedWrite>,
        now: Timestamp,
        origin: WriteOrigin<'a>,
    ) -> Result<Written, StoreError> {
        let conn = self;
        // 1. New rows, as version 1.
        let mut seqs = Seqs::default();
        for chunk in sqlite_chunks(&batch) {
            let sql = NEW_RESOURCES.text(chunk.len());
            let mut query: SqliteQueryAs<'_, (String, String, i64)> = sqlx::query_as(&sql);
            for p in chunk {
                query = bind_resource_sqlite(query, p, now, origin);
            }
            for (resource_type, id, seq) in query.fetch_all(&mut *conn).await? {
                seqs.insert(resource_type, id, seq);
            }
        }
        // 2. Rows that existed: next version, upserted; their old index rows go.
        let existing: Vec<usize> = (0..batch.len()).filter(|&i| seqs.get(&batch[i].write).is_none()).collect();
        if !existing.is_empty() {
            let mut versions = Seqs::default();
            let mut seq_of = Seqs::default();
            let keys: Vec<&ResourceWrite> = existing.iter().map(|&i| &batch[i].write).collect();
            for chunk in sqlite_chunks(&keys) {
                let sql = sqlite_values(
                    "WITH k(t, i) AS (VALUES ",
                    2,
                    chunk.len(),
                    ") SELECT r.resource_type, r.id, r.version_id, r.seq FROM k \
                     JOIN fhir_resource r ON r.resource_type = k.t AND r.id = k.i",
                );
                let mut query: SqliteQueryAs<'_, (String, String, i64, i64)> = sqlx::query_as(&sql);
                for w in chunk {
                    query = query.bind(w.resource_type.as_str()).bind(w.id.as_str());
                }
                for (resource_type, id, version, seq) in query.fetch_all(&mut *conn).await? {
                    versions.insert(resource_type.clone(), id.clone(), version);
                    seq_of.insert(resource_type, id, seq);
                }
            }
            for &i in &existing {
                let (version, seq) = (versions.get(&batch[i].write), seq_of.get(&batch[i].write));
                reversion(&mut batch[i], version, seq, now)?;
            }
            let updates: Vec<&PreparedWrite> = existing.iter().map(|&i| &batch[i]).collect();
            for chunk in sqlite_chunks(&updates) {
                let sql = UPSERT_RESOURCES.text(chunk.len());
                let mut query: SqliteQueryAs<'_, (String, String, i64)> = sqlx::query_as(&sql);
                for p in chunk {
                    query = bind_resource_sqlite(query, p, now, origin);
                }
                for (resource_type, id, seq) in query.fetch_all(&mut *conn).await? {
                    seqs.insert(resource_type, id, seq);
                }
            }
            let replaced: Vec<i64> =
                updates.iter().filter(|p| seqs.get(&p.write).is_some()).filter_map(|p| p.existing_seq).collect();
            for table in INDEX_TABLES {
                for chunk in sqlite_chunks(&replaced) {
                    // One "row" of n placeholders: `IN (?, ?, …)`.
                    let sql = sqlite_values(&format!("DELETE FROM {table} WHERE resource_seq IN "), chunk.len(), 1, "");
                    let mut query: SqliteQuery<'_> = sqlx::query(&sql);
                    for seq in chunk {
                        query = query.bind(*seq);
                    }
                    query.execute(&mut *conn).await?;
                }
            }
        }
        let refused = take_refused(&mut batch, &seqs);
        // 3. Index rows.
        let mut identifiers: Vec<(i64, &str, &str)> = vec![];
        let mut references: Vec<(i64, &str, &str, &str)> = vec![];
        for p in &batch {
            let seq = seqs.of(&p.write)?;
            identifiers.extend(p.write.identifiers.iter().map(|i| (seq, i.system.as_str(), i.value.as_str())));
            references.extend(
                p.write.references.iter().map(|r| (seq, r.path.as_str(), r.target_type.as_str(), r.target_id.as_str())),
            );
        }
        for chunk in sqlite_chunks(&identifiers) {
            let sql = NEW_IDENTIFIERS.text(chunk.len());
            let mut query: SqliteQuery<'_> = sqlx::query(&sql);
            for (seq, system, value) in chunk {
                query = query.bind(*seq).bind(*system).bind(*value);
            }
            query.execute(&mut *conn).await?;
        }
        for chunk in sqlite_chunks(&references) {
            let sql = NEW_REFERENCES.text(chunk.len());
            let mut query: SqliteQuery<'_> = sqlx::query(&sql);
            for (seq, path, target_type, target_id) in chunk {
                query = query.bind(*seq).bind(*path).bind(*target_type).bind(*target_id);
            }
            query.execute(&mut *conn).await?;
        }
        drop((identifiers, references));
        Ok(Written { stored: stored(batch, &seqs, now)?, refused })
    }
}

fn bind_resource_sqlite<'q, O>(
    query: SqliteQueryAs<'q, O>,
    p: &'q PreparedWrite,
    now: Timestamp,
    origin: WriteOrigin<'q>,
) -> SqliteQueryAs<'q, O> {
    let w = &p.write;
    query
        .bind(w.resource_type.as_str())
        .bind(w.id.as_str())
        .bind(p.version_id)
        .bind(now.millis())
        .bind(w.member_account.map(|a| a.0))
        .bind(w.patient_id.as_deref())
        .bind(w.source_system.as_deref())
        .bind(w.source_id.as_deref())
        .bind(p.security.as_str())
        .bind(w.sensitive)
        .bind(w.date_start.map(Timestamp::millis))
        .bind(w.date_end.map(Timestamp::millis))
        .bind(origin.transfer)
        .bind(origin.permission.unwrap_or(""))
        .bind(p.body.as_str())
}

/// The same columns as [`RESOURCE_INSERT`], over arrays: one statement for any number of rows.
const PG_RESOURCE_SELECT: &str = "SELECT u.resource_type, u.id, u.version_id, $1, u.member_account, u.patient_id, \
     u.source_system, u.source_id, u.security, u.sensitive, u.date_start, u.date_end, $2, $3, u.body \
     FROM UNNEST($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], \
     $11::text[], $12::boolean[], $13::bigint[], $14::bigint[], $15::text[]) \
     AS u(resource_type, id, version_id, member_account, patient_id, source_system, source_id, security, \
     sensitive, date_start, date_end, body)";
/// Rows per PostgreSQL statement: bounds the size of one message, not the number of texts.
const PG_CHUNK: usize = 1000;

async fn pg_insert_resources(
    conn: &mut PgConnection,
    rows: &[&PreparedWrite],
    now: Timestamp,
    origin: WriteOrigin<'_>,
    on_conflict: &str,
    seqs: &mut Seqs,
) -> Result<(), StoreError> {
    let sql = format!("{RESOURCE_INSERT}{PG_RESOURCE_SELECT}{on_conflict}");
    for chunk in rows.chunks(PG_CHUNK) {
        let returned: Vec<(String, String, i64)> = sqlx::query_as(&sql)
            .bind(now.millis())
            .bind(origin.transfer)
            .bind(origin.permission.unwrap_or(""))
            .bind(chunk.iter().map(|p| p.write.resource_type.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.id.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.version_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.member_account.map(|a| a.0)).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.patient_id.as_deref()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.source_system.as_deref()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.source_id.as_deref()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.security.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.sensitive).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.date_start.map(Timestamp::millis)).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.write.date_end.map(Timestamp::millis)).collect::<Vec<_>>())
            .bind(chunk.iter().map(|p| p.body.as_str()).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        for (resource_type, id, seq) in returned {
            seqs.insert(resource_type, id, seq);
        }
    }
    Ok(())
}

impl WriteResources for PgConnection {
    async fn mark_sensitive_provenance<'a>(
        &'a mut self,
        stored: &'a mut [StoredResource],
        custodian_checked: bool,
    ) -> Result<(), StoreError> {
        run_provenance_rule!(self, Dialect::Postgres, stored, custodian_checked)
    }

    async fn write_resources<'a>(
        &'a mut self,
        mut batch: Vec<PreparedWrite>,
        now: Timestamp,
        origin: WriteOrigin<'a>,
    ) -> Result<Written, StoreError> {
        let conn = self;
        // 1. New rows, as version 1.
        let mut seqs = Seqs::default();
        let all: Vec<&PreparedWrite> = batch.iter().collect();
        pg_insert_resources(&mut *conn, &all, now, origin, ON_CONFLICT_SKIP, &mut seqs).await?;
        drop(all);
        // 2. Rows that existed: next version, upserted; their old index rows go.
        let existing: Vec<usize> = (0..batch.len()).filter(|&i| seqs.get(&batch[i].write).is_none()).collect();
        if !existing.is_empty() {
            let mut versions = Seqs::default();
            let mut seq_of = Seqs::default();
            for chunk in existing.chunks(PG_CHUNK) {
                let found: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT r.resource_type, r.id, r.version_id, r.seq FROM UNNEST($1::text[], $2::text[]) AS k(t, i) \
                     JOIN fhir_resource r ON r.resource_type = k.t AND r.id = k.i",
                )
                .bind(chunk.iter().map(|&i| batch[i].write.resource_type.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|&i| batch[i].write.id.as_str()).collect::<Vec<_>>())
                .fetch_all(&mut *conn)
                .await?;
                for (resource_type, id, version, seq) in found {
                    versions.insert(resource_type.clone(), id.clone(), version);
                    seq_of.insert(resource_type, id, seq);
                }
            }
            for &i in &existing {
                let (version, seq) = (versions.get(&batch[i].write), seq_of.get(&batch[i].write));
                reversion(&mut batch[i], version, seq, now)?;
            }
            let updates: Vec<&PreparedWrite> = existing.iter().map(|&i| &batch[i]).collect();
            pg_insert_resources(&mut *conn, &updates, now, origin, ON_CONFLICT_UPDATE, &mut seqs).await?;
            let replaced: Vec<i64> =
                updates.iter().filter(|p| seqs.get(&p.write).is_some()).filter_map(|p| p.existing_seq).collect();
            if !replaced.is_empty() {
                for table in INDEX_TABLES {
                    sqlx::query(&format!("DELETE FROM {table} WHERE resource_seq = ANY($1::bigint[])"))
                        .bind(&replaced)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        let refused = take_refused(&mut batch, &seqs);
        // 3. Index rows.
        let mut identifiers: (Vec<i64>, Vec<&str>, Vec<&str>) = Default::default();
        let mut references: (Vec<i64>, Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
        for p in &batch {
            let seq = seqs.of(&p.write)?;
            for i in &p.write.identifiers {
                identifiers.0.push(seq);
                identifiers.1.push(&i.system);
                identifiers.2.push(&i.value);
            }
            for r in &p.write.references {
                references.0.push(seq);
                references.1.push(&r.path);
                references.2.push(&r.target_type);
                references.3.push(&r.target_id);
            }
        }
        if !identifiers.0.is_empty() {
            sqlx::query(
                "INSERT INTO fhir_identifier (resource_seq, system, value) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])",
            )
            .bind(&identifiers.0)
            .bind(&identifiers.1)
            .bind(&identifiers.2)
            .execute(&mut *conn)
            .await?;
        }
        if !references.0.is_empty() {
            sqlx::query(
                "INSERT INTO fhir_reference (resource_seq, path, target_type, target_id) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[])",
            )
            .bind(&references.0)
            .bind(&references.1)
            .bind(&references.2)
            .bind(&references.3)
            .execute(&mut *conn)
            .await?;
        }
        drop((identifiers, references));
        Ok(Written { stored: stored(batch, &seqs, now)?, refused })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_fixed_shapes() {
        let rows: Vec<usize> = (0..1001).collect();
        let sizes: Vec<usize> = sqlite_chunks(&rows).map(<[usize]>::len).collect();
        assert_eq!(sizes, [256, 256, 256, 64, 64, 64, 16, 16, 4, 4, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), 1001);
        assert_eq!(sqlite_chunks::<u8>(&[]).count(), 0);
        assert!((0..600).all(|n| {
            let rows = vec![0u8; n];
            sqlite_chunks(&rows).all(|c| SQLITE_SHAPES.contains(&c.len()))
                && sqlite_chunks(&rows).map(<[u8]>::len).sum::<usize>() == n
        }));
    }

    #[test]
    fn statement_texts_are_made_once_per_shape() {
        let statement = SqliteStatement::new("INSERT INTO t (a, b) VALUES ", 2, " X");
        assert!(matches!(statement.text(4), Cow::Borrowed(_)));
        assert_eq!(statement.text(4), sqlite_values("INSERT INTO t (a, b) VALUES ", 2, 4, " X"));
        assert_eq!(statement.text(3), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) X", "not a shape: made now");
        assert_eq!(NEW_RESOURCES.text(1).matches('?').count(), RESOURCE_COLUMNS);
    }

    #[test]
    fn multi_row_text() {
        assert_eq!(
            sqlite_values("INSERT INTO t (a, b) VALUES ", 2, 2, " X"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) X"
        );
        assert_eq!(sqlite_values("IN ", 1, 1, ""), "IN (?)");
    }
}
