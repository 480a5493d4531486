//! Records a transfer's records name and it had not written when their page was committed
//! (`transfer_target`): with their ids at the previous plan, so that the transfer can fetch
//! them afterwards — this plan's record ids are opaque, so the previous plan's id cannot be
//! read back from them.

use std::collections::HashMap;

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{Store, StoreError, on_pool};

/// Targets per statement (two parameters each).
const PER_QUERY: usize = 250;

impl Store {
    /// The previous plan's ids of those of `targets` (`(type, id here)`) the transfer noted.
    pub async fn transfer_target_sources(
        &self,
        transfer_id: &str,
        targets: &[(String, String)],
    ) -> Result<HashMap<(String, String), String>, StoreError> {
        let mut found = HashMap::new();
        for chunk in targets.chunks(PER_QUERY) {
            let mut sql = SqlBuilder::new("WITH k (t, i) AS (VALUES ");
            sql.rows(chunk.iter().map(|(t, i)| vec![Arg::Text(t.clone()), Arg::Text(i.clone())]));
            sql.push(
                ") SELECT x.target_type, x.target_id, x.source_id FROM k JOIN transfer_target x \
                 ON x.target_type = k.t AND x.target_id = k.i WHERE x.withheld IS NULL AND x.transfer_id = ",
            )
            .arg(Arg::Text(transfer_id.to_owned()));
            let rows: Vec<(String, String, String)> =
                on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
            found.extend(rows.into_iter().map(|(t, i, source)| ((t, i), source)));
        }
        Ok(found)
    }

    /// The records the transfer left out as sensitive, with why: `(type, id here, reason key)`.
    pub async fn transfer_withheld(&self, transfer_id: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT target_type, target_id, withheld FROM transfer_target \
             WHERE transfer_id = $1 AND withheld IS NOT NULL ORDER BY target_type, target_id",
        )
        .bind(transfer_id)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }
}
