//! The staff console's read models and actions: one call per page, which checks nothing about
//! the session (the page did), reads what the page shows, and writes the audit record before
//! answering — a view whose record cannot be written is not shown.

mod admin;
mod clients;
mod directory;
mod home;
mod members;
mod records;
mod requests;
mod roster;
mod transfers;

use baton_enrollment::Enrollment;
use baton_journey::Journey;
use baton_mail::Mailer;
use baton_store::{Account, AccountId, Store, StoreError};
use baton_vocab::Role;
use thiserror::Error;

use crate::audit::{Action, Actor, Auditor};

pub use admin::IssuedToken;
pub use clients::{NewPayerClient, default_scopes};
pub use directory::BrandsLoad;
pub use members::Notified;
pub use requests::{RequestAction, StaffOptIn};
pub use transfers::TransferQuery;

/// Why a console call did not answer.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// There is no such thing (or it is not a member's).
    #[error("not found")]
    NotFound,
    /// A query or form field is malformed: its name.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The staff member's roles do not allow this.
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

/// The staff console.
#[derive(Clone)]
pub struct Console {
    store: Store,
    auditor: Auditor,
    journey: Journey,
    enrollment: Enrollment,
    mailer: Mailer,
}

impl Console {
    pub fn new(store: Store, journey: Journey, enrollment: Enrollment, mailer: Mailer) -> Self {
        Self { auditor: Auditor::new(store.clone()), store, journey, enrollment, mailer }
    }

    /// Writes what `staff` saw or did.
    pub async fn audit(
        &self,
        staff: &Account,
        action: Action,
        member: Option<AccountId>,
        subject: &str,
        detail: &str,
    ) -> Result<(), ConsoleError> {
        let actor = Actor::account(staff.id, &staff.username, &staff.display_name);
        Ok(self.auditor.record(&actor, action, member, subject, detail).await?)
    }

    /// A previous plan's name, by its directory id (the id when it is not known any more).
    fn payer_name(&self, id: &str) -> String {
        self.journey.payers.known(id).map_or_else(|| id.to_owned(), |p| p.name)
    }

    /// A member's account, by the id in a page's address; `NotFound` for anything else.
    async fn member(&self, id: &str) -> Result<Account, ConsoleError> {
        let id: i64 = id.parse().map_err(|_| ConsoleError::NotFound)?;
        match self.store.account_by_id(AccountId(id)).await? {
            Some(account) if account.member_id.is_some() => Ok(account),
            _ => Err(ConsoleError::NotFound),
        }
    }
}

fn is_admin(staff: &Account) -> bool {
    staff.roles.has(Role::Admin)
}
