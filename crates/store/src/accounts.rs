use baton_vocab::{Role, Roles, day};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::{Store, StoreError, Timestamp, on_pool};

/// Database id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

/// An account: who may sign in, and with which roles. The one account type: `baton-accounts`
/// owns the rules (username normalisation, password hashing) and re-exports it.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Normalised (trimmed, lower case) by `baton-accounts` before it is stored.
    pub username: String,
    pub display_name: String,
    pub roles: Roles,
    /// The plan's member id (members only).
    pub member_id: Option<String>,
    pub birth_date: Option<Date>,
    pub coverage_start: Option<Date>,
    /// The member's own FHIR Patient in this plan's store.
    pub patient_id: Option<String>,
    /// The argon2id PHC string, when a password is set.
    pub password_hash: Option<String>,
    pub created_at: i64,
}

impl Account {
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("member_id", &self.member_id)
            .field("has_password", &self.has_password())
            .finish_non_exhaustive()
    }
}

/// The row as stored: dates as `YYYY-MM-DD` text.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    username: String,
    display_name: String,
    password_hash: Option<String>,
    roles: Roles,
    member_id: Option<String>,
    birth_date: Option<String>,
    coverage_start: Option<String>,
    patient_id: Option<String>,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        let day = |field: &str, text: Option<String>| {
            text.map(|t| {
                day::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("account {}: {field} {t:?}", row.id)))
            })
            .transpose()
        };
        Ok(Account {
            birth_date: day("birth_date", row.birth_date.clone())?,
            coverage_start: day("coverage_start", row.coverage_start.clone())?,
            id: AccountId(row.id),
            username: row.username,
            display_name: row.display_name,
            roles: row.roles,
            member_id: row.member_id,
            patient_id: row.patient_id,
            password_hash: row.password_hash,
            created_at: row.created_at,
        })
    }
}

impl From<i64> for AccountId {
    fn from(id: i64) -> Self {
        AccountId(id)
    }
}

/// A new account.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub roles: Roles,
    pub member_id: Option<String>,
    pub birth_date: Option<Date>,
    pub coverage_start: Option<Date>,
    pub patient_id: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "id, username, display_name, password_hash, roles, member_id, \
                               birth_date, coverage_start, patient_id, created_at";

impl Store {
    /// Inserts an account; a taken username or member id is a [`StoreError::Conflict`].
    pub async fn insert_account(&self, new: &NewAccount) -> Result<AccountId, StoreError> {
        let id: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO account (username, display_name, password_hash, roles, member_id, \
                 birth_date, coverage_start, patient_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&new.username)
            .bind(&new.display_name)
            .bind(&new.password_hash)
            .bind(&new.roles)
            .bind(&new.member_id)
            .bind(new.birth_date.map(day::format))
            .bind(new.coverage_start.map(day::format))
            .bind(&new.patient_id)
            .bind(Timestamp::now().millis())
            .fetch_one(pool)
            .await?
        });
        Ok(AccountId(id))
    }

    pub async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE username = $1");
        let row: Option<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(username).fetch_optional(pool).await?
        });
        row.map(Account::try_from).transpose()
    }

    pub async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE id = $1");
        let row: Option<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Account::try_from).transpose()
    }

    pub async fn account_by_member_id(&self, member_id: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE member_id = $1");
        let row: Option<AccountRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql).bind(member_id).fetch_optional(pool).await?
        });
        row.map(Account::try_from).transpose()
    }

    /// Removes an account's password (an admin reset its access): it signs in again only
    /// through a new invitation.
    pub async fn clear_password(&self, id: AccountId) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE account SET password_hash = NULL WHERE id = $1").bind(id.0).execute(pool).await?;
        });
        Ok(())
    }

    /// Replaces an account's password hash.
    pub async fn set_password_hash(&self, id: AccountId, hash: &str) -> Result<(), StoreError> {
        let updated = on_pool!(self, pool => {
            sqlx::query("UPDATE account SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound(format!("account {}", id.0)));
        }
        Ok(())
    }

    /// Links an account to its FHIR Patient.
    pub async fn set_account_patient(&self, id: AccountId, patient_id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE account SET patient_id = $1 WHERE id = $2")
                .bind(patient_id)
                .bind(id.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn count_accounts(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM account").fetch_one(pool).await?
        }))
    }
}

impl Store {
    /// How many accounts hold `role` (roles are stored space-separated).
    pub async fn count_accounts_with_role(&self, role: Role) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM account WHERE ' ' || roles || ' ' LIKE $1")
                .bind(format!("% {role} %"))
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
