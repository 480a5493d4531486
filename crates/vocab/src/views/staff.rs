//! What the staff console's pages show. Times are written out for staff already (UTC, e.g.
//! `2026-11-25 14:03 UTC`); days as `YYYY-MM-DD`.

use serde::{Deserialize, Serialize};

use crate::{ConsentPolicy, EventKind, LinkState, TransferKind, TransferState};

/// The staff home: members, transfers by state, the last 30 days, members late to opt in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffHome {
    pub display_name: String,
    pub admin: bool,
    pub members: u64,
    pub states: Vec<(TransferState, u64)>,
    pub days: Vec<DayBar>,
    pub late: Vec<LateMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBar {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub started: u32,
    pub completed: u32,
    pub failed: u32,
}

/// A member whose coverage started over a week ago and who has not asked for their records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateMember {
    pub account: i64,
    pub name: String,
    pub member_id: String,
    pub coverage_start: String,
}

/// One page of a member search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSearch {
    pub admin: bool,
    pub rows: Vec<MemberRow>,
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub account: i64,
    pub name: String,
    pub member_id: String,
    pub birth_date: String,
    pub coverage_start: String,
}

/// Everything about one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetail {
    pub admin: bool,
    pub account: i64,
    pub name: String,
    pub username: String,
    pub member_id: String,
    pub birth_date: String,
    pub coverage_start: String,
    /// The plan's name on the member's own Coverage.
    pub plan: Option<String>,
    pub has_password: bool,
    pub invitation_link: Option<String>,
    pub invitation_expires: Option<String>,
    pub consents: Vec<ConsentRow>,
    pub links: Vec<LinkRow>,
    pub transfers: Vec<TransferLine>,
    /// Records this plan holds about the member.
    pub received: u64,
    /// Their previous plans on the Payer-to-Payer path, with opt-in and requests.
    pub previous: Vec<super::requests::PreviousPlanView>,
    /// Plans a previous coverage may name: (id, name).
    pub payers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRow {
    pub id: String,
    pub payer: String,
    pub policy: ConsentPolicy,
    pub given_at: String,
    pub until: String,
    pub withdrawn_at: Option<String>,
    /// The HRex Consent resource, pretty-printed.
    pub json: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRow {
    pub payer: String,
    pub state: LinkState,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLine {
    pub id: String,
    pub payer: String,
    pub state: TransferState,
    pub created_at: String,
    /// Records that arrived with it (the member's progress page count).
    pub stored: u64,
}

/// One page of the transfer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferList {
    pub admin: bool,
    /// Every plan transfers can be from, `(id, name)`, for the filter.
    pub payers: Vec<(String, String)>,
    pub rows: Vec<ListedTransfer>,
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedTransfer {
    pub id: String,
    pub member: i64,
    pub member_name: String,
    pub payer: String,
    pub state: TransferState,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub stored: u64,
    /// The member withdrew the permission it ran under.
    pub withdrawn: bool,
}

/// One transfer in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffTransfer {
    pub admin: bool,
    pub id: String,
    pub member: i64,
    pub member_name: String,
    pub payer: String,
    pub state: TransferState,
    pub kind: TransferKind,
    pub attempts: i32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub include_sensitive: bool,
    pub events: Vec<EventRow>,
    pub requests: Vec<RequestRow>,
    pub types: Vec<TypeRow>,
    /// Left out at the member's request, per reason (`label:substance_use`…).
    pub excluded: Vec<(String, u64)>,
    pub rejections: Vec<RejectionRow>,
    pub not_permitted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub at: String,
    pub kind: EventKind,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRow {
    pub at: String,
    pub method: String,
    pub url: String,
    pub status: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRow {
    pub resource_type: String,
    pub received: u64,
    pub stored: u64,
    pub excluded: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRow {
    pub at: String,
    pub source: String,
    pub reason: String,
}

/// A member's records of one kind (claims and prior authorizations as a timeline, newest
/// first), each with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecords {
    pub admin: bool,
    pub privacy: bool,
    pub member: i64,
    pub member_name: String,
    pub kind: crate::Category,
    /// How many there are (at most [`MemberRecords::items`] are listed).
    pub total: u64,
    pub items: Vec<RecordItem>,
}

/// One record as listed. A hidden item (sensitive, not revealed) carries only its type and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordItem {
    pub resource_type: String,
    pub id: String,
    pub sensitive: bool,
    pub hidden: bool,
    pub title: Option<String>,
    /// `YYYY-MM-DD` of the record's date (service date, onset…), when it has one.
    pub date: Option<String>,
    /// The plan it came from (its name); `None` for this plan's own.
    pub from: Option<String>,
    pub sources: Vec<RecordSource>,
}

/// Where a record came from: a Provenance pointing at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSource {
    pub provenance_id: String,
    pub recorded: Option<String>,
    pub activity: Option<String>,
    /// The agents' names (who made, sent or received it).
    pub agents: Vec<String>,
}

/// One record in full (or, hidden, nothing of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDetail {
    pub admin: bool,
    pub privacy: bool,
    pub resource_type: String,
    pub id: String,
    pub member: Option<i64>,
    pub sensitive: bool,
    pub hidden: bool,
    pub title: Option<String>,
    /// Sanitized XHTML.
    pub narrative: Option<String>,
    pub json: Option<String>,
    /// The plan it came from (its FHIR base) and its id there.
    pub from: Option<String>,
    pub source_id: Option<String>,
    pub security: Vec<String>,
}
