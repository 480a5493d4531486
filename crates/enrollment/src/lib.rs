//! Enrollment: the plan's member roster and invitations.
//!
//! Staff upload the roster as CSV or as a FHIR Bundle of Patient + Coverage. [`roster::parse`]
//! turns it into a [`roster::Preview`] — every row either a valid [`roster::RosterEntry`] or
//! its errors in plain words — which staff see before anything is written. [`commit`] then
//! creates or updates each member (account, own Patient and Coverage in the store) keyed by
//! member id, so importing the same roster twice changes nothing, and gives each new member
//! an [`invitation`] link to set their password.

pub mod commit;
pub mod invitation;
pub mod previous;
pub mod roster;

pub use commit::{CommitReport, Enrollment, MemberOutcome};
pub use invitation::{InvitationError, Invitations};
pub use previous::{OptInEntry, PreviousEntry};
pub use roster::{Format, Preview, RosterEntry, RosterError, Row};
