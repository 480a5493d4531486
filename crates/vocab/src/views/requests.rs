//! Read models of this plan asking previous plans for new members' records (the Payer-to-Payer
//! API, server to server): what a member sees of their previous plans, what staff see of the
//! requests.

use serde::{Deserialize, Serialize};

use super::Day;
use crate::{ConsentChannel, MatchResult, OptIn, RequestState};

/// A member's previous plan, their opt-in, and where this plan's asking stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousPlanView {
    pub coverage_id: String,
    pub payer_id: String,
    pub payer_name: String,
    /// The id on the old card.
    pub member_id: String,
    pub start: Option<Day>,
    pub end: Option<Day>,
    pub concurrent: bool,
    pub opt_in: OptIn,
    /// When they opted in or out, and how (and by whom, for staff).
    pub opted_on: Option<Day>,
    pub channel: Option<ConsentChannel>,
    pub recorded_by: Option<String>,
    /// The sensitive-information choice of the opt-in in force.
    pub include_sensitive: Option<bool>,
    /// The last day the permission lasts.
    pub until: Option<Day>,
    /// The latest request that carried them.
    pub request: Option<MemberRequestView>,
    /// When this plan asks next (none: not planned).
    pub next_on: Option<Day>,
}

/// A request as one member of it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRequestView {
    pub request_id: String,
    pub asked_on: Day,
    pub state: RequestState,
    /// What the previous plan answered for this member (none: not yet).
    pub result: Option<MatchResult>,
    /// The transfer filing their records, once matched.
    pub transfer_id: Option<String>,
}

/// The member's previous-plans page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousPlansPage {
    pub plan_name: String,
    pub plans: Vec<PreviousPlanView>,
    /// Plans a coverage may name: (id, name), in name order.
    pub payers: Vec<(String, String)>,
    /// The last day a permission given now would last; none when the time to ask has ended.
    pub until: Option<Day>,
}

/// A request to a previous plan, for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    /// The viewer may use the admin pages.
    pub admin: bool,
    pub id: String,
    pub payer_id: String,
    pub payer_name: String,
    pub state: RequestState,
    pub created_on: Day,
    pub members: i64,
    pub matched: i64,
    pub not_matched: i64,
    pub constrained: i64,
    /// Lines read from the export's files, and of them those not filed.
    pub lines: i64,
    pub rejected: i64,
    /// Records filed for its members (the sum of their transfers' counts).
    pub records: u64,
    /// Incremental: what changed since.
    pub since: Option<String>,
    /// What it waits for, or the previous plan's `X-Progress`.
    pub note: Option<String>,
    pub error: Option<String>,
    /// What the previous plan reported along the way.
    pub problems: Vec<String>,
    pub members_list: Vec<RequestMemberView>,
}

/// One member of a request, for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMemberView {
    pub account: i64,
    pub name: String,
    pub result: Option<MatchResult>,
    pub transfer_id: Option<String>,
    pub transfer_state: Option<crate::TransferState>,
    pub records: u64,
}

/// The staff requests page: the latest requests, and opted-in members not asked yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestsPage {
    pub admin: bool,
    /// Plans a request may be to, for the filter: (id, name).
    pub payers: Vec<(String, String)>,
    /// The latest requests, newest first (without their members).
    pub requests: Vec<RequestView>,
    /// Opted-in members not yet asked for, oldest opt-in first.
    pub waiting: Vec<WaitingMember>,
}

/// An opted-in member no request has carried yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingMember {
    pub account: i64,
    pub coverage_id: String,
    pub name: String,
    pub payer_name: String,
    pub opted_on: Option<Day>,
    /// Days since they opted in: past 7, the rule's week is missed.
    pub days: i64,
}
