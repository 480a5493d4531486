//! Secrets this Baton makes for itself once and keeps in its own database (`instance_secret`).

use crate::{Store, StoreError, Timestamp, on_pool};

impl Store {
    /// The secret named `name`: `candidate` the first time any instance asks (a fresh random
    /// value from the caller), the value stored then ever after — every instance sharing the
    /// database gets the same one.
    pub async fn instance_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        Ok(on_pool!(@db self.write_db(), pool => {
            sqlx::query("INSERT INTO instance_secret (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .bind(Timestamp::now().millis())
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT value FROM instance_secret WHERE name = $1").bind(name).fetch_one(pool).await?
        }))
    }
}

/// A received record's id here, and the id it is to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub resource_type: String,
    pub from: String,
    pub to: String,
}

/// A record received from another plan, as [`Store::received_records`] lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReceivedRecord {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub source_system: String,
    pub source_id: String,
}

impl Store {
    /// Whether the one-time upgrade `name` ran on this database.
    pub async fn upgrade_done(&self, name: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT done_at FROM instance_upgrade WHERE name = $1").bind(name).fetch_optional(pool).await?
        });
        Ok(found.is_some())
    }

    /// Notes that the one-time upgrade `name` ran.
    pub async fn mark_upgrade_done(&self, name: &str) -> Result<(), StoreError> {
        on_pool!(@db self.write_db(), pool => {
            sqlx::query("INSERT INTO instance_upgrade (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(Timestamp::now().millis())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records received from another plan (deleted ones too), in storage order after `after_seq`.
    pub async fn received_records(&self, after_seq: i64, limit: i64) -> Result<Vec<ReceivedRecord>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, resource_type, id, source_system, source_id FROM fhir_resource \
                 WHERE seq > $1 AND source_system IS NOT NULL AND source_id IS NOT NULL ORDER BY seq LIMIT $2",
            )
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Gives records new ids everywhere they are named, in one transaction: their rows and
    /// bodies, the references to them (index rows and the referring records' bodies) and
    /// what transfers noted of them. A record of `renames` no longer there is skipped.
    pub async fn rename_records(&self, renames: &[Rename]) -> Result<(), StoreError> {
        let mut by_reference = std::collections::HashMap::new();
        for r in renames {
            by_reference.insert(format!("{}/{}", r.resource_type, r.from), format!("{}/{}", r.resource_type, r.to));
        }
        on_pool!(@db self.write_db(), pool => {
            let mut tx = pool.begin().await?;
            let mut touched: std::collections::BTreeSet<i64> = Default::default();
            for r in renames {
                let referrers: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT resource_seq FROM fhir_reference WHERE target_type = $1 AND target_id = $2",
                )
                .bind(&r.resource_type)
                .bind(&r.from)
                .fetch_all(&mut *tx)
                .await?;
                touched.extend(referrers);
                for table in ["fhir_reference", "transfer_target"] {
                    sqlx::query(&format!(
                        "UPDATE {table} SET target_id = $3 WHERE target_type = $1 AND target_id = $2"
                    ))
                    .bind(&r.resource_type)
                    .bind(&r.from)
                    .bind(&r.to)
                    .execute(&mut *tx)
                    .await?;
                }
                let renamed: Option<i64> = sqlx::query_scalar(
                    "UPDATE fhir_resource SET id = $3 WHERE resource_type = $1 AND id = $2 RETURNING seq",
                )
                .bind(&r.resource_type)
                .bind(&r.from)
                .bind(&r.to)
                .fetch_optional(&mut *tx)
                .await?;
                touched.extend(renamed);
            }
            for seq in touched {
                let (resource_type, id, body): (String, String, String) =
                    sqlx::query_as("SELECT resource_type, id, body FROM fhir_resource WHERE seq = $1")
                        .bind(seq)
                        .fetch_one(&mut *tx)
                        .await?;
                let mut value: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Invalid(format!("{resource_type}/{id} is not JSON: {e}")))?;
                let mut changed = rename_references(&mut value, &by_reference);
                if value.get("id").and_then(serde_json::Value::as_str) != Some(id.as_str()) {
                    value["id"] = serde_json::Value::String(id);
                    changed = true;
                }
                if changed {
                    sqlx::query("UPDATE fhir_resource SET body = $1 WHERE seq = $2")
                        .bind(value.to_string())
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Rewrites every `reference` of `value` that `renames` maps (`Type/id` to `Type/id`); says
/// whether one changed.
fn rename_references(value: &mut serde_json::Value, renames: &std::collections::HashMap<String, String>) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            let mut changed = false;
            for (key, child) in object.iter_mut() {
                if key == "reference"
                    && let Value::String(reference) = child
                    && let Some(to) = renames.get(reference.as_str())
                {
                    *reference = to.clone();
                    changed = true;
                } else {
                    changed |= rename_references(child, renames);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| rename_references(item, renames) | changed),
        _ => false,
    }
}
