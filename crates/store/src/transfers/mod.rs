//! Consents, links to previous plans, and transfers: durable jobs leased by workers.
//!
//! A worker claims a job ([`Store::claim_transfer`]), then commits each page it fetched together
//! with its checkpoint in one transaction ([`Store::commit_transfer_page`]), which also proves it
//! still holds the lease. A worker that dies stops renewing its lease; when the lease runs out
//! another worker claims the job and resumes from the last committed checkpoint, so nothing is
//! counted twice and nothing is lost. On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so
//! several Baton instances share the queue.
//!
//! - [`consents`]: members' permissions;
//! - [`links`]: their authorizations at previous plans (sealed tokens);
//! - [`queue`]: enqueueing, leasing and ending jobs;
//! - [`pages`]: committing a job's pages;
//! - [`history`]: what staff and members read of transfers;
//! - [`received`]: what transfers brought.

mod consents;
mod history;
mod links;
mod pages;
mod queue;
mod received;

pub use consents::MemberConsent;
pub use history::{TransferEvent, TransferFilter, TransferRejection, TransferRequest, TransferRow, TransferTimes};
pub use links::PayerLink;
pub use pages::{CommitError, PreparedTransferPage, TransferPage, TransferTarget};
pub use queue::Transfer;
pub(crate) use queue::TRANSFER_COLUMNS;
pub use received::TransferredResource;
