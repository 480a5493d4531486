//! The member's journey on the new plan's side (no UI here; the `app` crate shows it):
//!
//! - [`payers`]: the directory of previous plans a member can pick;
//! - [`pinned`]: endpoints and scopes an admin pins for a plan loaded from a brands file;
//! - [`discovery`]: each plan's SMART configuration, cached, and the scopes to ask for;
//! - [`consent`]: the member's consent as an HRex Consent resource;
//! - [`authorization`]: the SMART standalone launch — state, PKCE S256, `aud` — and the callback;
//! - [`Journey`]: ties them to the store and the transfer engine: a completed authorization
//!   becomes a consent, a link holding the sealed tokens, and a queued transfer; a withdrawal
//!   stops the pulls and can delete what arrived.

pub mod authorization;
pub mod brands;
mod connect;
pub mod consent;
pub mod coverage;
pub mod discovery;
pub mod matching;
pub mod payers;
pub mod pinned;
mod previous_plans;
mod revoke;
mod views;

use std::sync::Arc;

use baton_store::{AccountId, Store, StoreError, Timestamp, TransferFilter};
use baton_transfer::TokenCipher;
use baton_vocab::LinkAccess;
use thiserror::Error;
use time::Date;
use url::Url;

pub use authorization::{AuthorizationErrorCode, CallbackError, CallbackParams, Granted, PendingAuthorization};
pub use coverage::{CoverageInput, OptInChoice};
pub use discovery::{Discovery, DiscoveryError};
pub use matching::{Matched, OldCard};
pub use payers::{ConfiguredPayer, ConfiguredState, Directory, EntryState, Payer, Payers};
pub use pinned::PinnedError;

/// The audit action of an authorization the previous plan refused, or that could not reach it.
pub const AUTHORIZATION_FAILED: &str = "authorization.failed";

/// What went wrong, in terms the pages can put into words.
#[derive(Debug, Error)]
pub enum JourneyError {
    #[error("there is no previous plan {0:?} in the directory")]
    UnknownPayer(String),
    /// Staff switched the plan off: no new authorization starts (transfers already authorized
    /// run to their end).
    #[error("the previous plan {0:?} is switched off in this plan's directory: no new authorization can start")]
    NotOffered(String),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error("the consent was not found")]
    UnknownConsent,
    /// More than 90 days have passed since the member's coverage started.
    #[error("the time to bring records from a previous plan ended on {ended} (90 days after the coverage started)")]
    WindowClosed { ended: Date },
    /// The plan is in the directory, but this plan's system is not registered there for the
    /// Payer-to-Payer API.
    #[error("this plan has no Payer-to-Payer registration at {0:?}")]
    NoPayerToPayer(String),
    /// The old plan refused this plan's system (its registration, scopes or token).
    #[error("the old plan refused this plan's system: {0}")]
    PayerRefused(String),
    /// A field the member typed is not usable: its name.
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Brands(#[from] brands::BrandsError),
    #[error(transparent)]
    Pinned(#[from] PinnedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What loading a brands file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandsImport {
    /// Plans the file lists (with a FHIR R4 endpoint).
    pub entries: usize,
    /// Of which new to the directory.
    pub added: u64,
    /// Plans the file listed before and no longer does: not offered any more.
    pub withdrawn: u64,
    /// The server said the file had not changed (`304` to `If-None-Match`).
    pub not_modified: bool,
}

/// The new plan's side of the exchange.
#[derive(Clone)]
pub struct Journey(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub cipher: TokenCipher,
    pub http: reqwest::Client,
    pub discovery: Discovery,
    pub payers: Directory,
    /// This plan's callback, registered at every previous plan.
    pub redirect_uri: Url,
    /// This plan's public base URL and name.
    pub local_base: String,
    pub plan_name: String,
    /// This plan's identifiers (`system|value`, its NAIC company code) as Consents name it.
    pub identifiers: Vec<String>,
    /// Whether brands files may be fetched from private and local addresses.
    pub allow_private_brands: bool,
}

impl std::ops::Deref for Journey {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What a finished authorization started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub consent_id: String,
    pub link_id: String,
    pub transfer_id: String,
}

/// What a withdrawal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Withdrawal {
    /// Whether this call withdrew it (false: it already was).
    pub withdrawn: bool,
    /// Records deleted because the member asked.
    pub deleted: u64,
    /// Records it brought that stayed, because another permission of the member's brought them too.
    pub kept: u64,
    /// Directory entries that stayed because other members' records name them.
    pub shared: u64,
}

impl Journey {
    pub fn new(inner: Inner) -> Self {
        Journey(Arc::new(inner))
    }

    /// The URL to send the member to at `payer_id`, and what to keep in their session.
    pub async fn start(
        &self,
        payer_id: &str,
        include_sensitive: bool,
        now: Timestamp,
    ) -> Result<(Url, PendingAuthorization), JourneyError> {
        let payer = self.offered(payer_id)?;
        let endpoints = self.discovery.endpoints(&payer).await?;
        let (url, pending) = authorization::authorization_request(
            &payer,
            &endpoints,
            &self.redirect_uri,
            include_sensitive,
            now.millis(),
        );
        tracing::info!(payer = %payer.id, include_sensitive, "authorization started");
        Ok((url, pending))
    }

    /// The plan refused the scopes asked for (`invalid_scope`) and they were the wildcard: the
    /// same authorization again — the member's choice and when they made it kept — asking for
    /// the CARIN BB per-type read scopes a v1-only plan supports (spec §1.2). What it then
    /// grants decides what is pulled. `None` for any other answer, for a callback whose state
    /// is not this authorization's, and when the per-type scopes were already refused.
    pub async fn per_type_retry(
        &self,
        pending: &PendingAuthorization,
        params: &CallbackParams,
    ) -> Option<(Url, PendingAuthorization)> {
        let refused_scope = params.error.as_deref() == Some("invalid_scope");
        if !refused_scope
            || params.state.as_deref() != Some(pending.state.as_str())
            || !discovery::asks_for_every_type(&pending.requested_scope)
        {
            return None;
        }
        let payer = self.offered(&pending.payer_id).ok()?;
        let mut endpoints = self.discovery.endpoints(&payer).await.ok()?;
        endpoints.scope = discovery::carin_scopes();
        tracing::info!(payer = %payer.id, "the plan refused the wildcard scope; asking for CARIN BB per-type scopes");
        Some(authorization::authorization_request(
            &payer,
            &endpoints,
            &self.redirect_uri,
            pending.include_sensitive,
            pending.consent_given_at,
        ))
    }

    /// [`Journey::start`] for `member`; when the plan cannot be used, why is written to the
    /// audit log (staff see the plan's discovery on its card in the directory).
    pub async fn start_for(
        &self,
        member: AccountId,
        payer_id: &str,
        include_sensitive: bool,
        now: Timestamp,
    ) -> Result<(Url, PendingAuthorization), JourneyError> {
        let started = self.start(payer_id, include_sensitive, now).await;
        if let Err(error @ JourneyError::Discovery(_)) = &started {
            self.audit_failure(member, payer_id, error, now).await;
        }
        started
    }

    /// The member came back from their previous plan: checks the state, redeems the code, then
    /// records the consent, the link (tokens sealed) and queues the transfer. When the plan
    /// refused or could not be reached, why is written to the audit log.
    pub async fn finish(
        &self,
        member: AccountId,
        pending: Option<&PendingAuthorization>,
        params: &CallbackParams,
        now: Timestamp,
    ) -> Result<Connected, JourneyError> {
        let finished = self.finish_inner(member, pending, params, now).await;
        if let (Err(error @ JourneyError::Callback(cause)), Some(pending)) = (&finished, pending)
            && cause.is_the_plans()
        {
            self.audit_failure(member, &pending.payer_id, error, now).await;
        }
        finished
    }

    /// Writes a failed authorization to the audit log (best effort: the member's page says what
    /// happened whether or not the log could be written).
    async fn audit_failure(&self, member: AccountId, payer_id: &str, error: &JourneyError, now: Timestamp) {
        let event = baton_store::NewAuditEvent {
            at: now,
            actor_account: Some(member),
            actor: "member".into(),
            action: AUTHORIZATION_FAILED.into(),
            member_account: Some(member),
            subject: format!("payer {payer_id}"),
            detail: error.to_string(),
        };
        if let Err(audit_error) = self.store.record_audit(&event).await {
            tracing::error!(%audit_error, %error, "cannot record a failed authorization");
        }
    }

    async fn finish_inner(
        &self,
        member: AccountId,
        pending: Option<&PendingAuthorization>,
        params: &CallbackParams,
        now: Timestamp,
    ) -> Result<Connected, JourneyError> {
        let pending = pending.ok_or(CallbackError::NoPendingAuthorization)?;
        // A plan switched off while the member was away: no token request (a new authorization).
        let payer = self.offered(&pending.payer_id)?;
        // Nor when the time to give the permission ran out meanwhile.
        self.consent_until(member, now).await?;
        let granted = authorization::complete(pending, params, &payer.credentials, &self.http, now.millis()).await?;
        self.connect_pending(member, &payer, pending, granted, now).await
    }

    /// Records an authorization a member gave a previous plan some other way (an import, or the
    /// demo's history): the same consent, link and queued transfer as after the callback.
    pub async fn connect_granted(
        &self,
        member: AccountId,
        payer_id: &str,
        include_sensitive: bool,
        granted: Granted,
        now: Timestamp,
    ) -> Result<Connected, JourneyError> {
        let payer = self.offered(payer_id)?;
        let pending = PendingAuthorization {
            state: String::new(),
            verifier: String::new(),
            payer_id: payer.id.clone(),
            fhir_base: payer.fhir_base.to_string().trim_end_matches('/').to_owned(),
            token_url: String::new(),
            redirect_uri: self.redirect_uri.to_string(),
            requested_scope: granted.scope.clone(),
            include_sensitive,
            consent_given_at: now.millis(),
        };
        self.connect_pending(member, &payer, &pending, granted, now).await
    }

    /// The last day a permission the member gives now would last, or why they cannot give one.
    pub async fn consent_until(&self, member: AccountId, now: Timestamp) -> Result<Date, JourneyError> {
        let account =
            self.store.account_by_id(member).await?.ok_or_else(|| JourneyError::Failed("no such member".into()))?;
        consent_until(&account, false, now)
    }

    /// A payer members may start an authorization with: offered in the directory. A payer staff
    /// switched off is refused as such, not as unknown.
    fn offered(&self, payer_id: &str) -> Result<Payer, JourneyError> {
        match self.payers.get(payer_id) {
            Some(payer) => Ok(payer),
            None if self.payers.withheld(payer_id).is_some() => Err(JourneyError::NotOffered(payer_id.to_owned())),
            None => Err(JourneyError::UnknownPayer(payer_id.to_owned())),
        }
    }

    /// Queues what is due of the periodic pulls: each link whose permission still holds and
    /// whose last transfer completed more than `every` ago gets an incremental transfer, for
    /// what changed since that one started (PDex run-off and re-pulls; nothing after the
    /// consent ends or is withdrawn). Returns how many were queued.
    pub async fn queue_due_pulls(&self, every: time::Duration, now: Timestamp) -> Result<usize, JourneyError> {
        let due = self.store.links_due_for_pull(now.plus(-every), now, 100).await?;
        let mut queued = 0;
        for (link_id, since) in due {
            let Some(link) = self.store.link(&link_id).await? else { continue };
            let id = uuid::Uuid::new_v4().to_string();
            let since = Timestamp::from_millis(since);
            self.store.enqueue_transfer(&id, &link, baton_vocab::TransferKind::Incremental, Some(since), now).await?;
            tracing::info!(link = %link.id, transfer = %id, "periodic pull queued");
            queued += 1;
        }
        Ok(queued)
    }

    /// After the member's authorization at the old plan.
    async fn connect_pending(
        &self,
        member: AccountId,
        payer: &Payer,
        pending: &PendingAuthorization,
        granted: Granted,
        now: Timestamp,
    ) -> Result<Connected, JourneyError> {
        let consent =
            self.give_consent(member, payer, pending.include_sensitive, false, pending.consent_given_at, now).await?;
        self.connect(member, payer, consent, LinkAccess::Member, &pending.fhir_base, granted, now).await
    }

    /// The member withdraws a consent: its links are revoked (tokens dropped), queued and
    /// running transfers stop. With `delete_received`, what arrived under it and under no other
    /// permission of theirs is deleted too (see [`Journey::withdrawal_preview`]), and the
    /// consent keeps how many records went and stayed; each of its
    /// transfers' timelines says how many of the records it brought went.
    pub async fn withdraw(
        &self,
        member: AccountId,
        consent_id: &str,
        delete_received: bool,
        now: Timestamp,
    ) -> Result<Withdrawal, JourneyError> {
        let store = &self.store;
        let consent = store.consent(consent_id).await?.filter(|c| c.member_account == member);
        let Some(consent) = consent else { return Err(JourneyError::UnknownConsent) };
        let ending = self.links_to_end(&consent.id, member).await;
        let withdrawn = store.withdraw_consent(&consent.id, now).await?;
        if withdrawn {
            self.end_access(&ending, now).await?;
        }
        // An opt-in to being asked for server to server ends with its Consent: nothing more is
        // asked of that plan.
        for coverage in store.previous_coverages(member).await? {
            if coverage.consent_id.as_deref() == Some(consent.id.as_str()) && coverage.opt_in == baton_vocab::OptIn::In
            {
                self.opt_out(member, &coverage.id, "member", now).await?;
            }
        }
        let mut outcome = Withdrawal { withdrawn, ..Withdrawal::default() };
        if delete_received {
            let all = store.delete_permission_records(member, &consent.id).await?;
            let (records, _) = views::counted(&all);
            for transfer in self.transfers_of_consent(member, &consent.id).await? {
                let removed = records.deleted_by_transfer.get(&transfer.id).copied().unwrap_or(0);
                store
                    .add_transfer_event(
                        &transfer.id,
                        now,
                        baton_vocab::EventKind::Deleted,
                        &format!("{removed} records, at the member's request"),
                    )
                    .await?;
            }
            // A second call (a second click) finds nothing left: what the first did stays said.
            if records != baton_store::PermissionRecords::default() || consent.records_deleted.is_none() {
                store.set_consent_deletion(&consent.id, &records).await?;
            }
            outcome.deleted = records.deleted;
            outcome.kept = records.kept;
            outcome.shared = records.shared;
        }
        tracing::info!(member = member.0, consent = %consent.id, withdrawn, deleted = outcome.deleted, kept = outcome.kept, "consent withdrawn");
        Ok(outcome)
    }

    async fn transfers_of_consent(
        &self,
        member: AccountId,
        consent_id: &str,
    ) -> Result<Vec<baton_store::Transfer>, JourneyError> {
        let mut transfers = vec![];
        for link in
            self.store.links_of(member).await?.into_iter().filter(|l| l.consent_id.as_deref() == Some(consent_id))
        {
            let filter = TransferFilter {
                link_id: Some(link.id.clone()),
                member_account: Some(member),
                limit: 1000,
                ..TransferFilter::default()
            };
            transfers.extend(self.store.list_transfers(&filter).await?);
        }
        Ok(transfers)
    }

    /// Where the consent form may send the member: the origins of every previous plan's
    /// authorization endpoint (pinned, discovered, or else its FHIR base's), for the pages'
    /// `form-action` policy — the form's redirect goes there.
    pub fn form_targets(&self) -> std::collections::BTreeSet<String> {
        let mut origins = self.discovery.authorize_origins();
        for payer in self.payers.all() {
            origins.insert(payer.fhir_base.origin().ascii_serialization());
            if let Some(url) = &payer.authorize_url {
                origins.insert(url.origin().ascii_serialization());
            }
        }
        origins.retain(|o| o != "null");
        origins
    }

    /// Reads every plan's SMART configuration once, so that its authorization endpoint is known
    /// before a member needs it; a plan that cannot be used is logged for the operators.
    pub async fn warm_up(&self) {
        for payer in self.payers.all() {
            if let Err(error) = self.discovery.endpoints(&payer).await {
                tracing::warn!(payer = %payer.id, %error, "previous plan's SMART discovery failed");
            }
        }
    }

    /// Loads (or refreshes) the brands file at `url`: sends the ETag of the last load as
    /// `If-None-Match`; new plans are added (not offered to members until staff enter this
    /// plan's registration there), known ones updated. The check is recorded either way.
    pub async fn import_brands_url(&self, url: &Url, now: Timestamp) -> Result<BrandsImport, JourneyError> {
        let known = self.store.brand_source(url.as_str()).await?;
        let known_etag = known.as_ref().and_then(|k| k.etag.clone());
        let known_entries = known.as_ref().map_or(0, |k| k.entries);
        // (result, the ETag to keep, whether the content changed)
        let fetched = brands::fetch(&self.http, url, known_etag.as_deref(), self.allow_private_brands).await;
        let (result, etag, changed) = match fetched {
            Ok(brands::Fetched::NotModified) => {
                let import =
                    BrandsImport { entries: known_entries as usize, added: 0, withdrawn: 0, not_modified: true };
                (Ok(import), known_etag, false)
            }
            Ok(brands::Fetched::Body { text, etag }) => match brands::parse(&text) {
                Ok(entries) => match self.apply_brands(url.as_str(), &entries, now).await {
                    Ok(applied) => {
                        let import = BrandsImport {
                            entries: entries.len(),
                            added: applied.added,
                            withdrawn: applied.withdrawn,
                            not_modified: false,
                        };
                        (Ok(import), etag, true)
                    }
                    Err(error) => (Err(error), known_etag, false),
                },
                Err(error) => (Err(error.into()), known_etag, false),
            },
            Err(error) => (Err(error.into()), known_etag, false),
        };
        let status = match &result {
            Ok(import) if import.not_modified => "not modified since the last load".to_owned(),
            Ok(import) if import.withdrawn > 0 => format!(
                "{} plans, {} new, {} no longer listed (not offered any more)",
                import.entries, import.added, import.withdrawn
            ),
            Ok(import) => format!("{} plans, {} new", import.entries, import.added),
            Err(error) => format!("failed: {error}"),
        };
        self.store
            .save_brand_source(&baton_store::BrandSource {
                url: url.to_string(),
                etag,
                checked_at: now.millis(),
                changed_at: if changed { now.millis() } else { known.as_ref().map_or(now.millis(), |k| k.changed_at) },
                status,
                entries: result.as_ref().map_or(known_entries, |i| i.entries as i64),
            })
            .await?;
        result
    }

    /// Loads a brands file staff uploaded (no refresh: there is no URL to ask again).
    pub async fn import_brands_file(
        &self,
        name: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<BrandsImport, JourneyError> {
        let entries = brands::parse(text)?;
        let applied = self.apply_brands(&format!("file:{name}"), &entries, now).await?;
        Ok(BrandsImport {
            entries: entries.len(),
            added: applied.added,
            withdrawn: applied.withdrawn,
            not_modified: false,
        })
    }

    async fn apply_brands(
        &self,
        source: &str,
        entries: &[brands::BrandEntry],
        now: Timestamp,
    ) -> Result<baton_store::EntriesApplied, JourneyError> {
        let rows: Vec<baton_store::PayerEntry> = entries
            .iter()
            .map(|e| baton_store::PayerEntry {
                id: e.id.clone(),
                name: e.name.clone(),
                aliases: e.aliases.join("\n"),
                states: e.states.join(" "),
                logo_url: e.logo_url.as_ref().map(ToString::to_string),
                fhir_base: e.fhir_base.to_string().trim_end_matches('/').to_owned(),
                source_url: source.to_owned(),
                client_id: None,
                credential: None,
                enabled: false,
                updated_at: now.millis(),
                authorize_url: None,
                token_url: None,
                scopes: None,
                withdrawn_at: None,
            })
            .collect();
        let applied = self.store.apply_payer_entries(source, &rows, now).await?;
        self.payers.reload(&self.store).await?;
        Ok(applied)
    }

    /// Staff enter this plan's registration at a brands entry; the directory is rebuilt.
    pub async fn register_payer(
        &self,
        id: &str,
        client_id: Option<&str>,
        credential: Option<&str>,
        enabled: bool,
        now: Timestamp,
    ) -> Result<bool, JourneyError> {
        let known = self.store.set_payer_registration(id, client_id, credential, enabled, now).await?;
        self.payers.reload(&self.store).await?;
        Ok(known)
    }

    /// An admin switches a configured payer off (`Some(false)`), on (`Some(true)`), or lets
    /// configuration decide again (`None`); the directory is rebuilt. False when `id` is not a
    /// payer from configuration. Transfers already authorized with a payer switched off run to
    /// their end; no new authorization starts.
    pub async fn set_configured_payer_enabled(
        &self,
        id: &str,
        enabled: Option<bool>,
        now: Timestamp,
    ) -> Result<bool, JourneyError> {
        if !self.payers.is_configured(id) {
            return Ok(false);
        }
        self.store.set_payer_enabled_override(id, enabled, now).await?;
        self.payers.reload(&self.store).await?;
        Ok(true)
    }

    /// An admin pins a brands entry's endpoints and scope override, as typed in the staff form
    /// (an empty field clears it; each is checked by [`pinned::parse`]); the directory is
    /// rebuilt. False when there is no such entry.
    pub async fn pin_payer_endpoints(
        &self,
        id: &str,
        authorize_url: &str,
        token_url: &str,
        scopes: &str,
        now: Timestamp,
    ) -> Result<bool, JourneyError> {
        let pinned = pinned::parse(authorize_url, token_url, scopes)?;
        let known = self.store.set_payer_endpoints(id, &pinned, now).await?;
        self.payers.reload(&self.store).await?;
        Ok(known)
    }

    /// Runs discovery for one payer now (staff's "check"; switched-off payers too): `None` when
    /// it works.
    pub async fn check_payer(&self, id: &str) -> Option<String> {
        let payer = self.payers.known(id)?;
        self.discovery.endpoints(&payer).await.err().map(|e| e.to_string())
    }
}

/// The words the member agrees to (kept with the consent, for audit).
pub fn consent_statement(old_plan: &str, new_plan: &str, include_sensitive: bool, until: Date) -> String {
    let choice = if include_sensitive {
        "I allow my records about behavioral health, substance use and other sensitive care to be included."
    } else {
        "I do not allow my records about behavioral health, substance use and other sensitive care to be included."
    };
    format!(
        "I allow {new_plan} to get my health records from {old_plan}: claims and visits (without payment amounts), \
         clinical records and prior authorizations, from at least the last 5 years. {choice} \
         This permission lasts until {until}. I can withdraw it at any time in {new_plan}'s member portal."
    )
}

/// The last day a permission given now lasts; for a member the previous plan still covers, to
/// the plan year's end.
fn consent_until(account: &baton_store::Account, concurrent: bool, now: Timestamp) -> Result<Date, JourneyError> {
    let window = if concurrent {
        consent::Window::for_concurrent(account.coverage_start, now_date(now))
    } else {
        consent::Window::for_coverage(account.coverage_start, now_date(now))
    };
    match window {
        consent::Window::Open { until } => Ok(until),
        consent::Window::Closed { ended } => Err(JourneyError::WindowClosed { ended }),
    }
}

fn now_date(now: Timestamp) -> Date {
    baton_vocab::day::of_millis(now.millis())
}
