use baton_store::{AccountId, NewAccount, Store, StoreError};
use thiserror::Error;
use time::Date;
use time::macros::format_description;

use crate::password::{self, NewPassword, PasswordError};
use crate::sign_in::ThrottlePolicy;
use crate::{Role, Roles, Username};

/// An account as the rest of Baton sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub username: Username,
    pub display_name: String,
    pub roles: Roles,
    /// The plan's member id (members only).
    pub member_id: Option<String>,
    pub birth_date: Option<Date>,
    pub coverage_start: Option<Date>,
    /// The member's own FHIR Patient in this plan's store.
    pub patient_id: Option<String>,
    pub has_password: bool,
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("that username is taken")]
    UsernameTaken,
    #[error("that member id belongs to another account")]
    MemberIdTaken,
    #[error("no such account")]
    NotFound,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("stored account is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) if message.contains("member_id") => AccountError::MemberIdTaken,
            StoreError::Conflict(_) => AccountError::UsernameTaken,
            StoreError::NotFound(_) => AccountError::NotFound,
            other => AccountError::Store(other),
        }
    }
}

/// A member of this plan to create.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub username: Username,
    pub display_name: String,
    /// `None` for members who will set their own from an invitation.
    pub password: Option<NewPassword>,
    pub member_id: String,
    pub birth_date: Date,
    pub coverage_start: Date,
}

/// A staff account to create.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub username: Username,
    pub display_name: String,
    pub password: NewPassword,
    pub roles: Roles,
}

/// Account operations over the store.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub(crate) store: Store,
    pub(crate) policy: ThrottlePolicy,
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

impl Accounts {
    pub fn new(store: Store, policy: ThrottlePolicy) -> Self {
        Self { store, policy }
    }

    pub async fn by_id(&self, id: AccountId) -> Result<Option<Account>, AccountError> {
        self.store.account_by_id(id).await?.map(Account::try_from).transpose()
    }

    pub async fn by_username(&self, username: &Username) -> Result<Option<Account>, AccountError> {
        self.store.account_by_username(username.as_str()).await?.map(Account::try_from).transpose()
    }

    pub async fn create_member(&self, new: NewMember) -> Result<Account, AccountError> {
        let password_hash = match new.password {
            Some(password) => Some(password::hash_async(password).await?),
            None => None,
        };
        let id = self
            .store
            .insert_account(&NewAccount {
                username: new.username.as_str().to_owned(),
                display_name: new.display_name,
                password_hash,
                roles: Roles::of([Role::Member]).to_stored(),
                member_id: Some(new.member_id),
                birth_date: Some(format_date(new.birth_date)),
                coverage_start: Some(format_date(new.coverage_start)),
                patient_id: None,
            })
            .await?;
        self.by_id(id).await?.ok_or(AccountError::NotFound)
    }

    pub async fn create_staff(&self, new: NewStaff) -> Result<Account, AccountError> {
        let password_hash = password::hash_async(new.password).await?;
        let id = self
            .store
            .insert_account(&NewAccount {
                username: new.username.as_str().to_owned(),
                display_name: new.display_name,
                password_hash: Some(password_hash),
                roles: new.roles.to_stored(),
                ..Default::default()
            })
            .await?;
        self.by_id(id).await?.ok_or(AccountError::NotFound)
    }

    pub async fn set_password(&self, id: AccountId, password: NewPassword) -> Result<(), AccountError> {
        let hash = password::hash_async(password).await?;
        self.store.set_password_hash(id, &hash).await?;
        Ok(())
    }
}

fn format_date(date: Date) -> String {
    date.format(DATE).unwrap_or_default()
}

fn parse_date(field: &str, text: Option<String>) -> Result<Option<Date>, AccountError> {
    text.map(|t| Date::parse(&t, DATE).map_err(|e| AccountError::Corrupt(format!("{field} {t:?}: {e}")))).transpose()
}

impl TryFrom<baton_store::Account> for Account {
    type Error = AccountError;

    fn try_from(row: baton_store::Account) -> Result<Self, Self::Error> {
        Ok(Account {
            id: row.id,
            username: Username::parse(&row.username)
                .map_err(|e| AccountError::Corrupt(format!("username {:?}: {e}", row.username)))?,
            display_name: row.display_name,
            roles: row.roles.parse().map_err(AccountError::Corrupt)?,
            member_id: row.member_id,
            birth_date: parse_date("birth_date", row.birth_date)?,
            coverage_start: parse_date("coverage_start", row.coverage_start)?,
            patient_id: row.patient_id,
            has_password: row.password_hash.is_some(),
        })
    }
}
