use baton_store::{Account, AccountId, NewAccount, Store, StoreError, Unique};
use thiserror::Error;
use time::Date;

use crate::password::{self, NewPassword, PasswordError};
use crate::sign_in::ThrottlePolicy;
use crate::{Role, Roles, Username};

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
            StoreError::Conflict(Unique::AccountMemberId) => AccountError::MemberIdTaken,
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

impl Accounts {
    pub fn new(store: Store, policy: ThrottlePolicy) -> Self {
        Self { store, policy }
    }

    pub async fn by_id(&self, id: AccountId) -> Result<Option<Account>, AccountError> {
        Ok(self.store.account_by_id(id).await?)
    }

    pub async fn by_username(&self, username: &Username) -> Result<Option<Account>, AccountError> {
        Ok(self.store.account_by_username(username.as_str()).await?)
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
                roles: Roles::of([Role::Member]),
                member_id: Some(new.member_id),
                birth_date: Some(new.birth_date),
                coverage_start: Some(new.coverage_start),
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
                roles: new.roles,
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
