//! Payer directory entries loaded from brands files, and the files themselves.

use serde::{Deserialize, Serialize};

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{Store, StoreError, Timestamp, on_pool};

/// A directory entry from a brands file, with this plan's registration if staff entered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PayerEntry {
    pub id: String,
    pub name: String,
    /// One per line.
    pub aliases: String,
    /// Space separated.
    pub states: String,
    pub logo_url: Option<String>,
    pub fhir_base: String,
    pub source_url: String,
    pub client_id: Option<String>,
    pub credential: Option<String>,
    pub enabled: bool,
    pub updated_at: i64,
    /// Pinned SMART authorization endpoint (absolute URL), for plans whose discovery is missing
    /// or wrong.
    pub authorize_url: Option<String>,
    /// Pinned SMART token endpoint (absolute URL).
    pub token_url: Option<String>,
    /// Space-separated SMART scopes asked for instead of those chosen from the capabilities.
    pub scopes: Option<String>,
    /// Since when its brands file, loaded again, no longer lists it (`None`: listed).
    pub withdrawn_at: Option<i64>,
}

/// What loading a brands file changed in the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntriesApplied {
    /// Entries new to the directory.
    pub added: u64,
    /// Entries of the same file that it no longer lists.
    pub withdrawn: u64,
}

/// What staff pin for a brands entry: endpoints and a scope override (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedEndpoints {
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Option<String>,
}

/// An admin's choice to offer a configured payer or not, winning over its `enabled` in
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PayerEnabledOverride {
    pub payer_id: String,
    pub enabled: bool,
    pub updated_at: i64,
}

/// A brands file and what its last check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BrandSource {
    pub url: String,
    pub etag: Option<String>,
    pub checked_at: i64,
    pub changed_at: i64,
    pub status: String,
    pub entries: i64,
}

const ENTRY_COLUMNS: &str = "id, name, aliases, states, logo_url, fhir_base, source_url, client_id, credential, \
     enabled, updated_at, authorize_url, token_url, scopes, withdrawn_at";

/// Every change to the directory bumps its version in the same transaction (migration 0010).
const BUMP_VERSION: &str = "UPDATE payer_directory_version SET version = version + 1 WHERE id = 1";

impl Store {
    /// The payer directory's version: it moves with every change any instance makes to brands
    /// entries, registrations, pinned endpoints or admins' on/off settings.
    pub async fn payer_directory_version(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT version FROM payer_directory_version WHERE id = 1").fetch_one(pool).await?
        }))
    }

    /// Applies what the brands file at `source_url` lists now (`entries`, all from it): adds new
    /// entries and updates what the file says about known ones (by FHIR base), keeping the
    /// registration staff entered (client id, credential, enabled, pinned endpoints, scopes);
    /// entries the file listed before and no longer does are marked withdrawn (kept, with their
    /// registration, and listed again if the file lists them again).
    pub async fn apply_payer_entries(
        &self,
        source_url: &str,
        entries: &[PayerEntry],
        now: Timestamp,
    ) -> Result<EntriesApplied, StoreError> {
        let mut applied = EntriesApplied::default();
        let listed: std::collections::HashSet<&str> = entries.iter().map(|e| e.fhir_base.as_str()).collect();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let before: Vec<String> =
                sqlx::query_scalar("SELECT fhir_base FROM payer_entry WHERE source_url = $1 AND withdrawn_at IS NULL")
                    .bind(source_url)
                    .fetch_all(&mut *tx)
                    .await?;
            for gone in before.iter().filter(|base| !listed.contains(base.as_str())) {
                applied.withdrawn += sqlx::query(
                    "UPDATE payer_entry SET withdrawn_at = $1, updated_at = $1 WHERE fhir_base = $2 AND source_url = $3",
                )
                .bind(now.millis())
                .bind(gone)
                .bind(source_url)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            for entry in entries {
                let updated = sqlx::query(
                    "UPDATE payer_entry SET name = $1, aliases = $2, states = $3, logo_url = $4, source_url = $5, \
                     updated_at = $6, withdrawn_at = NULL WHERE fhir_base = $7",
                )
                .bind(&entry.name)
                .bind(&entry.aliases)
                .bind(&entry.states)
                .bind(&entry.logo_url)
                .bind(&entry.source_url)
                .bind(entry.updated_at)
                .bind(&entry.fhir_base)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    sqlx::query(&format!(
                        "INSERT INTO payer_entry ({ENTRY_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL)"
                    ))
                    .bind(&entry.id)
                    .bind(&entry.name)
                    .bind(&entry.aliases)
                    .bind(&entry.states)
                    .bind(&entry.logo_url)
                    .bind(&entry.fhir_base)
                    .bind(&entry.source_url)
                    .bind(&entry.client_id)
                    .bind(&entry.credential)
                    .bind(entry.enabled)
                    .bind(entry.updated_at)
                    .bind(&entry.authorize_url)
                    .bind(&entry.token_url)
                    .bind(&entry.scopes)
                    .execute(&mut *tx)
                    .await?;
                    applied.added += 1;
                }
            }
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(applied)
    }

    pub async fn payer_entries(&self) -> Result<Vec<PayerEntry>, StoreError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM payer_entry ORDER BY name, id");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    /// Staff set this plan's registration at a payer; false when there is no such entry.
    pub async fn set_payer_registration(
        &self,
        id: &str,
        client_id: Option<&str>,
        credential: Option<&str>,
        enabled: bool,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let columns = [
            ("client_id", Arg::OptText(client_id.map(str::to_owned))),
            ("credential", Arg::OptText(credential.map(str::to_owned))),
            ("enabled", Arg::Bool(enabled)),
        ];
        self.update_entry(id, columns, at).await
    }

    /// Admins pin a brands entry's endpoints and scopes (`None` clears one); false when there is
    /// no such entry.
    pub async fn set_payer_endpoints(
        &self,
        id: &str,
        pinned: &PinnedEndpoints,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let columns = [
            ("authorize_url", Arg::OptText(pinned.authorize_url.clone())),
            ("token_url", Arg::OptText(pinned.token_url.clone())),
            ("scopes", Arg::OptText(pinned.scopes.clone())),
        ];
        self.update_entry(id, columns, at).await
    }

    /// Sets `columns` and `updated_at` of entry `id` and bumps the directory's version, in one
    /// transaction; false when there is no such entry.
    async fn update_entry(
        &self,
        id: &str,
        columns: impl IntoIterator<Item = (&'static str, Arg)>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut update = SqlBuilder::new("UPDATE payer_entry SET ");
        for (column, value) in columns {
            update.push(column).push(" = ").arg(value).push(", ");
        }
        update.push("updated_at = ").arg(Arg::I64(at.millis())).push(" WHERE id = ").arg(Arg::Text(id.to_owned()));
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = bind_args!(sqlx::query, update).execute(&mut *tx).await?.rows_affected();
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            tx.commit().await?;
            changed
        });
        Ok(changed == 1)
    }

    /// Admins switch a configured payer on or off (`Some`), or let configuration decide again
    /// (`None`).
    pub async fn set_payer_enabled_override(
        &self,
        payer_id: &str,
        enabled: Option<bool>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            match enabled {
                Some(enabled) => {
                    sqlx::query(
                        "INSERT INTO payer_enabled_override (payer_id, enabled, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (payer_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                    )
                    .bind(payer_id)
                    .bind(enabled)
                    .bind(at.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM payer_enabled_override WHERE payer_id = $1")
                        .bind(payer_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn payer_enabled_overrides(&self) -> Result<Vec<PayerEnabledOverride>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT payer_id, enabled, updated_at FROM payer_enabled_override ORDER BY payer_id")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn brand_source(&self, url: &str) -> Result<Option<BrandSource>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT url, etag, checked_at, changed_at, status, entries FROM brand_source WHERE url = $1")
                .bind(url)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn brand_sources(&self) -> Result<Vec<BrandSource>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT url, etag, checked_at, changed_at, status, entries FROM brand_source ORDER BY url")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn save_brand_source(&self, source: &BrandSource) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO brand_source (url, etag, checked_at, changed_at, status, entries) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, checked_at = excluded.checked_at, \
                 changed_at = excluded.changed_at, status = excluded.status, entries = excluded.entries",
            )
            .bind(&source.url)
            .bind(&source.etag)
            .bind(source.checked_at)
            .bind(source.changed_at)
            .bind(&source.status)
            .bind(source.entries)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
