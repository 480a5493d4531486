use crate::{Store, StoreError, Timestamp, on_pool};

/// Failed sign-ins are kept in the database, not in memory, so that the limit holds across
/// restarts and across several Baton instances sharing one PostgreSQL database.
impl Store {
    /// Records one failed sign-in under each of `keys` (e.g. the account and the client IP).
    pub async fn record_sign_in_failure(&self, keys: &[&str], at: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for key in keys {
                sqlx::query("INSERT INTO sign_in_failure (key, at) VALUES ($1, $2)")
                    .bind(*key)
                    .bind(at.millis())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Counts an attempt as a failure under each of `keys` before its password is checked (see
    /// `Accounts::sign_in`); [`Store::release_sign_in_attempt`] takes it back.
    pub async fn reserve_sign_in_attempt(&self, keys: &[&str], attempt: &str, at: Timestamp) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for key in keys {
                sqlx::query("INSERT INTO sign_in_failure (key, at, attempt) VALUES ($1, $2, $3)")
                    .bind(*key)
                    .bind(at.millis())
                    .bind(attempt)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes back an attempt's reservation (it was throttled, or it succeeded).
    pub async fn release_sign_in_attempt(&self, attempt: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sign_in_failure WHERE attempt = $1").bind(attempt).execute(pool).await?;
        });
        Ok(())
    }

    /// How many failures `key` has since `since`, and the oldest of them.
    pub async fn sign_in_failures_since(
        &self,
        key: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>), StoreError> {
        let (count, oldest): (i64, Option<i64>) = on_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*), MIN(at) FROM sign_in_failure WHERE key = $1 AND at >= $2")
                .bind(key)
                .bind(since.millis())
                .fetch_one(pool)
                .await?
        });
        Ok((u32::try_from(count).unwrap_or(u32::MAX), oldest.map(Timestamp::from_millis)))
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sign_in_failure WHERE key = $1").bind(key).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes failures older than `before` (housekeeping).
    pub async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM sign_in_failure WHERE at < $1")
                .bind(before.millis())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
