//! What the staff console's admin and directory pages show: API tokens, the audit log, the
//! roster import and the payer directory. Times are written out for staff already.

use serde::{Deserialize, Serialize};

use crate::vocabulary;

/// An API token as listed (its secret is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub include_sensitive: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensView {
    pub privacy: bool,
    pub api_base: String,
    /// The token just issued (name, secret), on the page load right after only.
    pub new_token: Option<(String, String)>,
    pub tokens: Vec<TokenRow>,
}

/// The filters of an audit search, as the query string carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilters {
    pub actor: String,
    pub action: String,
    pub member: String,
    pub from: String,
    pub to: String,
}

impl AuditFilters {
    /// The filters as the audit log records the search.
    pub fn describe(&self) -> String {
        format!("actor={} action={} member={} from={} to={}", self.actor, self.action, self.member, self.from, self.to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub member: Option<i64>,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub more: bool,
}

vocabulary! {
    /// What committing a roster did for one member.
    pub enum RosterOutcome {
        Created = "created",
        Updated = "updated",
        Unchanged = "unchanged",
        Failed = "failed",
    }
}

/// One roster line as previewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRow {
    pub number: usize,
    pub member_id: String,
    pub name: String,
    pub birth_date: String,
    pub coverage_start: String,
    pub plan: String,
    pub errors: Vec<String>,
}

/// One member of a committed roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub member_id: String,
    pub name: String,
    pub outcome: RosterOutcome,
    pub account: Option<i64>,
    pub reason: Option<String>,
    pub invitation_link: Option<String>,
    /// What became of the row's previous coverage and opt-in, in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Created, updated, unchanged and failed members of a committed roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterCounts {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterImportView {
    pub admin: bool,
    pub id: String,
    pub file_name: String,
    pub format: String,
    /// Why the whole file cannot be read, if so.
    pub file_error: Option<String>,
    pub rows: Vec<PreviewRow>,
    pub valid: usize,
    pub invalid: usize,
    pub committed_at: Option<String>,
    pub report: Option<Vec<ReportRow>>,
    pub counts: Option<RosterCounts>,
}

vocabulary! {
    /// Whether members can pick a plan of the directory, and if not, why.
    pub enum PayerState {
        Offered = "offered",
        Disabled = "disabled",
        /// A brands entry without this plan's registration there.
        NoRegistration = "no_registration",
        /// A brands entry registered with a credential configuration does not have.
        UnknownCredential = "unknown_credential",
        /// A configured payer has the same id or FHIR base (configuration wins).
        Shadowed = "shadowed",
        /// Its brands file no longer lists it.
        Withdrawn = "withdrawn",
    }
}

/// A previous plan in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryRow {
    pub id: String,
    pub name: String,
    pub fhir_base: String,
    /// The brands file it came from; `None`: configuration.
    pub source: Option<String>,
    pub state: PayerState,
    pub client_id: Option<String>,
    pub credential: Option<String>,
    pub enabled: bool,
    /// A brands entry: staff enter this plan's registration there.
    pub editable: bool,
    /// A configured payer: `enabled` in configuration, and an admin's override if any.
    pub enabled_in_config: Option<bool>,
    pub enabled_override: Option<bool>,
    /// Pinned endpoints and scope override (from configuration, or set by an admin).
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Option<String>,
    /// What discovery found the last time it ran on this server, and what Baton uses.
    pub discovery: Option<super::DiscoveryView>,
}

/// A brands file the directory was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRow {
    pub url: String,
    pub checked_at: String,
    pub changed_at: String,
    pub status: String,
    pub refreshable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryView {
    pub admin: bool,
    pub rows: Vec<DirectoryRow>,
    pub sources: Vec<SourceRow>,
    pub credentials: Vec<String>,
}

/// Another plan's system registered for the Payer-to-Payer API, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerClientRow {
    pub client_id: String,
    pub name: String,
    /// Its JWK Set URL, or `None` for a JWK Set entered inline.
    pub jwks_url: Option<String>,
    /// How many keys an inline JWK Set holds.
    pub inline_keys: usize,
    pub scopes: Vec<String>,
    /// Its plan's identifiers (`system|value`), which a Consent must name as the recipient.
    pub identifiers: Vec<String>,
    pub state: crate::ClientState,
    pub origin: crate::ClientOrigin,
    pub state_changed_by: Option<String>,
}

/// The page where admins register, suspend and remove other plans' systems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerClientsView {
    /// What other plans need: this plan's FHIR base and token URL.
    pub fhir_base: String,
    pub token_url: String,
    /// The scopes a new registration is offered.
    pub default_scopes: String,
    pub clients: Vec<PayerClientRow>,
}
