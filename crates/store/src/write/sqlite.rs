//! The SQLite side of writing resources: multi-row statements of a few fixed shapes.

use super::*;

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
