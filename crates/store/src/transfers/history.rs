//! What staff and members read of transfers: lists, counts, timelines, requests, rejections.

use baton_vocab::{EventKind, TransferSort, TransferState};
use serde::{Deserialize, Serialize};

use super::queue::{TRANSFER_COLUMNS, Transfer};
use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// One request made to a previous plan (for the audit; the URL never carries a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferRequest {
    pub at: i64,
    pub method: String,
    pub url: String,
    pub status: Option<i32>,
    pub duration_ms: i64,
    pub bytes: i64,
    pub error: Option<String>,
}

/// An event of a transfer's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferEvent {
    pub at: i64,
    pub kind: EventKind,
    pub detail: String,
}

/// A received resource that could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferRejection {
    pub at: i64,
    pub source: String,
    pub reason: String,
}

/// Filters for listing transfers.
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub states: Vec<TransferState>,
    pub member_account: Option<AccountId>,
    pub link_id: Option<String>,
    pub payer_id: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// Only transfers whose permission the member withdrew (`Some(true)`) or not (`Some(false)`).
    pub withdrawn: Option<bool>,
    pub sort: TransferSort,
    pub limit: u32,
    pub offset: u32,
}

/// The SQL order of a transfer list.
fn order_by(sort: TransferSort) -> &'static str {
    match sort {
        TransferSort::NewestFirst => "t.created_at DESC, t.id",
        TransferSort::OldestFirst => "t.created_at ASC, t.id",
        TransferSort::RecentlyFinished => "CASE WHEN t.finished_at IS NULL THEN 1 ELSE 0 END, t.finished_at DESC, t.id",
        TransferSort::MostReceived => "t.resources_stored DESC, t.created_at DESC, t.id",
    }
}

/// A transfer with who it is for and which plan it is from, for lists.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferRow {
    #[sqlx(flatten)]
    pub transfer: Transfer,
    pub member_name: String,
    pub payer_id: String,
    /// The member withdrew the permission it ran under.
    pub withdrawn: bool,
}

/// When a transfer started and finished and how, for the dashboard's chart.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferTimes {
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub state: TransferState,
}

impl Store {
    pub async fn list_transfers(&self, filter: &TransferFilter) -> Result<Vec<Transfer>, StoreError> {
        Ok(self.list_transfer_rows(filter).await?.into_iter().map(|row| row.transfer).collect())
    }

    /// Transfers matching `filter`, with the member's name and the previous plan.
    pub async fn list_transfer_rows(&self, filter: &TransferFilter) -> Result<Vec<TransferRow>, StoreError> {
        let columns = TRANSFER_COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let mut sql = SqlBuilder::new(&format!(
            "SELECT {columns}, a.display_name AS member_name, l.payer_id AS payer_id, (l.state = '{revoked}') AS withdrawn \
             FROM transfer t JOIN account a ON a.id = t.member_account JOIN payer_link l ON l.id = t.link_id WHERE 1 = 1",
            revoked = baton_vocab::LinkState::Revoked.as_str()
        ));
        match filter.withdrawn {
            Some(true) => sql.push(" AND l.state = ").arg(Arg::Text(baton_vocab::LinkState::Revoked.as_str().into())),
            Some(false) => sql.push(" AND l.state <> ").arg(Arg::Text(baton_vocab::LinkState::Revoked.as_str().into())),
            None => &mut sql,
        };
        if !filter.states.is_empty() {
            sql.push(" AND t.state IN ").text_list(filter.states.iter().map(|s| s.as_str()));
        }
        if let Some(member) = filter.member_account {
            sql.push(" AND t.member_account = ").arg(Arg::I64(member.0));
        }
        if let Some(link) = &filter.link_id {
            sql.push(" AND t.link_id = ").arg(Arg::Text(link.clone()));
        }
        if let Some(payer) = &filter.payer_id {
            sql.push(" AND l.payer_id = ").arg(Arg::Text(payer.clone()));
        }
        if let Some(from) = filter.created_from {
            sql.push(" AND t.created_at >= ").arg(Arg::I64(from.millis()));
        }
        if let Some(before) = filter.created_before {
            sql.push(" AND t.created_at < ").arg(Arg::I64(before.millis()));
        }
        sql.push(" ORDER BY ")
            .push(order_by(filter.sort))
            .push(" LIMIT ")
            .arg(Arg::I64(i64::from(filter.limit.clamp(1, 1000))))
            .push(" OFFSET ")
            .arg(Arg::I64(i64::from(filter.offset)));
        Ok(on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?))
    }

    /// How many transfers are in each state.
    pub async fn transfer_state_counts(&self) -> Result<Vec<(TransferState, u64)>, StoreError> {
        let rows: Vec<(TransferState, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM transfer GROUP BY state ORDER BY state").fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(state, n)| (state, u64::try_from(n).unwrap_or(0))).collect())
    }

    /// Transfers created or finished at or after `since`, for per-day charts.
    pub async fn transfer_times_since(&self, since: Timestamp) -> Result<Vec<TransferTimes>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at, finished_at, state FROM transfer WHERE created_at >= $1 OR finished_at >= $1",
            )
            .bind(since.millis())
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn add_transfer_event(
        &self,
        id: &str,
        at: Timestamp,
        kind: EventKind,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO transfer_event (transfer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(at.millis())
                .bind(kind)
                .bind(detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn transfer_events(&self, id: &str) -> Result<Vec<TransferEvent>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT at, kind, detail FROM transfer_event WHERE transfer_id = $1 ORDER BY at, kind")
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn transfer_requests(&self, id: &str) -> Result<Vec<TransferRequest>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT at, method, url, status, duration_ms, bytes, error FROM transfer_request WHERE transfer_id = $1 ORDER BY at",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn transfer_rejections(&self, id: &str) -> Result<Vec<TransferRejection>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT at, source, reason FROM transfer_rejected WHERE transfer_id = $1 ORDER BY at")
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }
}
