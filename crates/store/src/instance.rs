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
