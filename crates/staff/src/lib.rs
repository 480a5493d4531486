//! The staff console's logic, without any UI: who did what ([`audit`]), how transfers are
//! going ([`dashboard`]), and what Baton holds about a member and where it came from
//! ([`records`]). The `app` crate's staff pages call these and only render.

pub mod audit;
mod console;
pub mod dashboard;
pub mod records;

pub use audit::{Actor, Auditor};
pub use console::{
    BrandsLoad, Console, ConsoleError, IssuedToken, NewPayerClient, Notified, RequestAction, StaffOptIn, TransferQuery,
    default_scopes,
};
