//! Uploaded enrollment rosters, kept between preview and commit, and the member details an
//! import maintains.

use serde::{Deserialize, Serialize};

use crate::accounts::AccountRow;
use crate::audit::like_pattern;
use crate::sql::{Arg, SqlBuilder, bind_args};
use crate::{Account, AccountId, Store, StoreError, Timestamp, on_pool};

/// An uploaded roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RosterImport {
    pub id: String,
    /// `csv` or `fhir-bundle`.
    pub format: String,
    pub file_name: String,
    pub content: String,
    pub created_by: i64,
    pub created_at: i64,
    pub committed_at: Option<i64>,
    /// What the commit did (JSON, written by `baton-roster`).
    pub report: Option<String>,
}

/// The member details a roster carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDetails {
    pub display_name: String,
    pub birth_date: time::Date,
    pub coverage_start: time::Date,
}

/// Finding members: every given field narrows the search.
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    /// Part of the name, or the member id (exact, any case).
    pub text: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<time::Date>,
    pub limit: u32,
    pub offset: u32,
}

const ACCOUNT_COLUMNS: &str = "id, username, display_name, password_hash, roles, member_id, \
                               birth_date, coverage_start, patient_id, created_at";

impl Store {
    pub async fn insert_roster_import(&self, import: &RosterImport) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO roster_import (id, format, file_name, content, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&import.id)
            .bind(&import.format)
            .bind(&import.file_name)
            .bind(&import.content)
            .bind(import.created_by)
            .bind(import.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn roster_import(&self, id: &str) -> Result<Option<RosterImport>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, format, file_name, content, created_by, created_at, committed_at, report \
                 FROM roster_import WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Marks an import committed with its report; false when it already was (a second click,
    /// or another instance), so that it is committed once.
    pub async fn finish_roster_import(&self, id: &str, report: &str, at: Timestamp) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query("UPDATE roster_import SET committed_at = $1, report = $2 WHERE id = $3 AND committed_at IS NULL")
                .bind(at.millis())
                .bind(report)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Updates what a roster says about a member; true when something changed.
    pub async fn update_member_details(&self, id: AccountId, details: &MemberDetails) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE account SET display_name = $1, birth_date = $2, coverage_start = $3 \
                 WHERE id = $4 AND (display_name <> $1 OR birth_date IS NULL OR birth_date <> $2 \
                 OR coverage_start IS NULL OR coverage_start <> $3)",
            )
            .bind(&details.display_name)
            .bind(baton_vocab::day::format(details.birth_date))
            .bind(baton_vocab::day::format(details.coverage_start))
            .bind(id.0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Members (accounts with a member id) matching `query`, by name.
    pub async fn search_members(&self, query: &MemberQuery) -> Result<Vec<Account>, StoreError> {
        let mut sql = SqlBuilder::new(&format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE member_id IS NOT NULL"));
        if let Some(text) = query.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            sql.push(" AND (LOWER(display_name) LIKE ")
                .arg(Arg::Text(like_pattern(text)))
                .push(" ESCAPE '\\' OR LOWER(member_id) = ")
                .arg(Arg::Text(text.to_lowercase()))
                .push(" OR username = ")
                .arg(Arg::Text(text.to_lowercase()))
                .push(")");
        }
        if let Some(birth_date) = query.birth_date {
            sql.push(" AND birth_date = ").arg(Arg::Text(baton_vocab::day::format(birth_date)));
        }
        sql.push(" ORDER BY display_name, id LIMIT ")
            .arg(Arg::I64(i64::from(query.limit.clamp(1, 500))))
            .push(" OFFSET ")
            .arg(Arg::I64(i64::from(query.offset)));
        let rows: Vec<AccountRow> = on_pool!(self, pool => bind_args!(sqlx::query_as, sql).fetch_all(pool).await?);
        rows.into_iter().map(Account::try_from).collect()
    }

    /// Members whose coverage started on or before `started_by` (`YYYY-MM-DD`) and who have
    /// given no consent to bring records from a previous plan.
    pub async fn members_without_consent(
        &self,
        started_by: time::Date,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM account a WHERE member_id IS NOT NULL AND coverage_start IS NOT NULL \
             AND coverage_start <= $1 AND NOT EXISTS (SELECT 1 FROM member_consent c WHERE c.member_account = a.id) \
             ORDER BY coverage_start, display_name LIMIT $2"
        );
        let rows: Vec<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(baton_vocab::day::format(started_by))
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Account::try_from).collect()
    }
}
