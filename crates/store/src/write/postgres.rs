//! The PostgreSQL side of writing resources: one statement per table over arrays.

use super::*;

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
