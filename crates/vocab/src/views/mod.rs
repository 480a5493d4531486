//! The read models the pages render, shared by the server (which builds them in the domain
//! crates) and the browser (which renders them): plain data, no behaviour.

use serde::{Deserialize, Serialize};

pub mod console;
pub mod requests;
pub mod staff;

/// A previous plan's SMART discovery as staff see it on the plan's card: what its
/// `.well-known/smart-configuration` said, whether Baton used it, and what Baton uses.
/// Whom an invitation link is for: the welcome page greets them and tells them the username
/// they will sign in with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    pub name: String,
    pub username: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryView {
    /// The document's authorization and token endpoints, grant types and whether it offers
    /// PKCE S256 — `None` when it could not be read (see `unreadable`).
    pub found: Option<FoundConfiguration>,
    /// Why the document could not be read.
    pub unreadable: Option<String>,
    /// Why the document was not used (both endpoints are pinned, and it describes another server).
    pub ignored: Option<String>,
    /// The endpoints and scopes Baton uses for members…
    pub used: Option<UsedEndpoints>,
    /// …or why members cannot use the plan now.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundConfiguration {
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub grant_types: Vec<String>,
    pub s256: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedEndpoints {
    pub authorize: String,
    pub token: String,
    pub scope: String,
}

/// A day as (year, month, day).
pub type Day = (i32, u8, u8);

/// A calendar date as pages carry it.
pub fn day_of(date: time::Date) -> Day {
    (date.year(), u8::from(date.month()), date.day())
}

/// Kinds of record a member's pages always list (in this order), so counts never move the page
/// around: every kind a pull stores. What supports them (care providers, where records came
/// from) is counted apart, never in a total of records.
pub const MEMBER_CATEGORIES: [&str; 12] = [
    "claims",
    "prior_authorizations",
    "conditions",
    "medications",
    "visits",
    "labs",
    "immunizations",
    "documents",
    "procedures",
    "allergies",
    "care_plans",
    "coverage",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCount {
    pub key: String,
    pub count: u64,
    pub first: Option<Day>,
    pub last: Option<Day>,
}

/// A transfer as the member's progress page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub id: String,
    pub payer_id: String,
    pub payer_name: String,
    pub state: crate::TransferState,
    pub active: bool,
    pub received: u64,
    /// Records (the one count every screen shows; see `Progress::records`).
    pub stored: u64,
    /// Care providers and record sources kept with them, counted apart.
    #[serde(default)]
    pub supporting: u64,
    pub expected: Option<u64>,
    pub categories: Vec<CategoryCount>,
    pub excluded_total: u64,
    /// Excluded at the member's request, per kind of care (behavioral_health, substance_use…).
    pub excluded: Vec<(String, u64)>,
    pub not_permitted: Vec<String>,
    pub rejected: u64,
    pub consent_id: Option<String>,
    pub consent_withdrawn: bool,
    /// The last day the permission lasts.
    pub consent_until: Option<Day>,
    /// The member's choice here: include sensitive information.
    pub include_sensitive: bool,
    /// What the previous plan said about sensitive information in its grant; `None` when it
    /// did not say (then nobody here can tell whether it left anything out).
    pub source_sensitive: Option<crate::SensitiveSharing>,
    /// When the member withdrew the permission and asked for what arrived to be deleted.
    pub deletion: Option<Deletion>,
}

/// What deleting a withdrawn permission's records did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub deleted: u64,
    /// Records that stayed, because another permission of the member's brought them too.
    pub kept: u64,
    /// Care providers and other directory entries that stayed: other members' records name them.
    pub shared: u64,
}

/// What withdrawing a permission and deleting what arrived would do, for the member to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalPreview {
    pub transfer_id: String,
    pub consent_id: String,
    pub payer_name: String,
    /// Records that would be deleted, in all and per kind (the keys of [`MEMBER_CATEGORIES`],
    /// and `claims_and_prior_authorizations` for both kinds of claim together).
    pub deleted: u64,
    pub deleted_by_kind: Vec<(String, u64)>,
    /// Care providers and record sources that would go with them (counted apart).
    #[serde(default)]
    pub supporting: u64,
    /// Records that would stay, because another permission of the member's brought them too.
    pub kept: u64,
    /// Care providers and other directory entries that would stay: other members' records name them.
    pub shared: u64,
    /// Already withdrawn: nothing to confirm.
    pub withdrawn: bool,
}

/// What the member home shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHome {
    pub display_name: String,
    pub member_id: Option<String>,
    pub coverage_start: Option<Day>,
    /// Each previous plan the member linked, newest first.
    pub links: Vec<LinkSummary>,
}

/// A previous-plan link and how its latest transfer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSummary {
    pub payer_id: String,
    pub payer_name: String,
    /// The latest transfer, when there is one.
    pub transfer_id: Option<String>,
    pub state: Option<crate::TransferState>,
    /// Records that arrived with it (the progress page's count).
    pub stored: u64,
    pub withdrawn: bool,
    /// The permission: when given, whether sensitive information is included, until when.
    pub given_on: Option<Day>,
    pub include_sensitive: bool,
    pub until: Option<Day>,
    /// Earlier permissions with the same plan, newest first: the card's history.
    pub earlier: Vec<EarlierLink>,
}

/// An earlier permission with a plan the member home shows a newer one of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierLink {
    pub transfer_id: Option<String>,
    pub given_on: Option<Day>,
    pub withdrawn: bool,
    /// It ended because the member gave a newer permission for the same plan (which now holds
    /// what it brought).
    #[serde(default)]
    pub replaced: bool,
}

/// A previous plan in the directory, as the member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerCard {
    pub id: String,
    pub name: String,
    pub states: Vec<String>,
    pub logo_url: Option<String>,
}

/// The plans a search found: the first few in name order, and how many in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerResults {
    pub shown: Vec<PayerCard>,
    pub total: usize,
}

/// What the consent page needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPageData {
    pub payer_id: String,
    pub payer_name: String,
    pub plan_name: String,
    /// The last day the permission would last, as (year, month, day); when `closed`, the last
    /// day it could have been given.
    pub until: (i32, u8, u8),
    /// More than 90 days have passed since the member's coverage started.
    pub closed: bool,
    /// This plan can ask the old plan itself (the Payer-to-Payer API), without the member
    /// signing in there; then the form offers it, with the name on file to start from.
    pub by_match: bool,
    pub given: String,
    pub family: String,
}
