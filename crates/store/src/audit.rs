//! The audit log: every staff view of member data and every action, append only.

use serde::{Deserialize, Serialize};

use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{AccountId, Store, StoreError, Timestamp, on_pool};

/// One audit record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub at: Timestamp,
    /// The signed-in account, when the actor is one (API tokens are not).
    pub actor_account: Option<AccountId>,
    /// Who, as shown to admins.
    pub actor: String,
    pub action: String,
    pub member_account: Option<AccountId>,
    pub subject: String,
    pub detail: String,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub actor_account: Option<i64>,
    pub actor: String,
    pub action: String,
    pub member_account: Option<i64>,
    pub subject: String,
    pub detail: String,
}

/// What to look for in the audit log; every field narrows the search.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Matches the actor's name (substring, any case).
    pub actor: Option<String>,
    pub actor_account: Option<AccountId>,
    pub member_account: Option<AccountId>,
    /// Exact action, or a prefix ending in `.` (`transfer.` matches every transfer action).
    pub action: Option<String>,
    pub from: Option<Timestamp>,
    pub before: Option<Timestamp>,
    pub limit: u32,
    pub offset: u32,
}

const AUDIT_COLUMNS: &str = "id, at, actor_account, actor, action, member_account, subject, detail";

impl Store {
    pub async fn record_audit(&self, event: &NewAuditEvent) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_event (at, actor_account, actor, action, member_account, subject, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.at.millis())
            .bind(event.actor_account.map(|a| a.0))
            .bind(&event.actor)
            .bind(&event.action)
            .bind(event.member_account.map(|a| a.0))
            .bind(&event.subject)
            .bind(&event.detail)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Newest first. A `limit` of 0 means every match (for exports).
    pub async fn search_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = SqlBuilder::new(&format!("SELECT {AUDIT_COLUMNS} FROM audit_event WHERE 1 = 1"));
        if let Some(actor) = query.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            sql.push(" AND LOWER(actor) LIKE ").arg(Arg::Text(like_pattern(actor))).push(" ESCAPE '\\'");
        }
        if let Some(account) = query.actor_account {
            sql.push(" AND actor_account = ").arg(Arg::I64(account.0));
        }
        if let Some(member) = query.member_account {
            sql.push(" AND member_account = ").arg(Arg::I64(member.0));
        }
        if let Some(action) = query.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            if action.ends_with('.') {
                sql.push(" AND action LIKE ").arg(Arg::Text(format!("{}%", escape_like(action)))).push(" ESCAPE '\\'");
            } else {
                sql.push(" AND action = ").arg(Arg::Text(action.to_owned()));
            }
        }
        if let Some(from) = query.from {
            sql.push(" AND at >= ").arg(Arg::I64(from.millis()));
        }
        if let Some(before) = query.before {
            sql.push(" AND at < ").arg(Arg::I64(before.millis()));
        }
        sql.push(" ORDER BY at DESC, id DESC");
        if query.limit > 0 {
            sql.push(" LIMIT ")
                .arg(Arg::I64(i64::from(query.limit)))
                .push(" OFFSET ")
                .arg(Arg::I64(i64::from(query.offset)));
        }
        Ok(on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?))
    }
}

/// `%text%` for a case-insensitive `LIKE` on a lower-cased column, with `%`, `_` and `\` taken
/// literally.
pub(crate) fn like_pattern(text: &str) -> String {
    format!("%{}%", escape_like(&text.to_lowercase()))
}

pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
