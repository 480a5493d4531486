//! The payer directory: the previous plans a member can bring records from, and this plan's
//! registration at each (client id and credential, which come from configuration only).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use baton_store::{PayerEnabledOverride, PayerEntry, Store, StoreError};
use baton_transfer::{ClientAuth, PayerCredentials, PayerDirectory};
use url::Url;

/// A previous plan.
#[derive(Debug, Clone)]
pub struct Payer {
    /// Stable id (letters, digits, `-`).
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    /// Two-letter codes of the US states it serves.
    pub states: Vec<String>,
    pub logo_url: Option<Url>,
    pub fhir_base: Url,
    /// Pinned endpoints, for plans whose discovery is missing or wrong.
    pub authorize_url: Option<Url>,
    pub token_url: Option<Url>,
    /// Scopes asked for instead of those chosen from the plan's capabilities.
    pub scopes: Option<String>,
    pub credentials: PayerCredentials,
}

/// Previous plans, in name order.
#[derive(Debug, Clone, Default)]
pub struct Payers(Vec<Payer>);

impl Payers {
    pub fn new(mut payers: Vec<Payer>) -> Self {
        payers.sort_by_key(|p| p.name.to_lowercase());
        Self(payers)
    }

    pub fn get(&self, id: &str) -> Option<&Payer> {
        self.0.iter().find(|p| p.id == id)
    }

    pub fn all(&self) -> &[Payer] {
        &self.0
    }

    /// The plans matching every word of `query`: a word matches a plan whose name or an alias
    /// contains it, or a state it serves (`IL`). An empty query matches every plan.
    pub fn search(&self, query: &str) -> Vec<&Payer> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        self.0.iter().filter(|payer| words.iter().all(|word| payer.matches(word))).collect()
    }
}

impl Payer {
    fn matches(&self, word: &str) -> bool {
        self.name.to_lowercase().contains(word)
            || self.aliases.iter().any(|a| a.to_lowercase().contains(word))
            || self.states.iter().any(|s| s.eq_ignore_ascii_case(word))
    }
}

impl PayerDirectory for Payers {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        self.get(payer_id).map(|p| p.credentials.clone())
    }

    fn fhir_base(&self, payer_id: &str) -> Option<String> {
        self.get(payer_id).map(|p| p.fhir_base.to_string())
    }
}

/// A payer from configuration (`[[payers]]`), and whether configuration offers it.
#[derive(Debug, Clone)]
pub struct ConfiguredPayer {
    pub payer: Payer,
    /// `enabled` in configuration; an admin's override in the store wins over it.
    pub enabled: bool,
}

impl From<Payer> for ConfiguredPayer {
    fn from(payer: Payer) -> Self {
        Self { payer, enabled: true }
    }
}

/// A configured payer as the directory applies it: what configuration says, and what an admin
/// chose in the staff console (if anything).
#[derive(Debug, Clone)]
pub struct ConfiguredState {
    pub payer: Payer,
    pub enabled_in_config: bool,
    pub enabled_override: Option<bool>,
}

impl ConfiguredState {
    /// The override when there is one, else configuration.
    pub fn enabled(&self) -> bool {
        self.enabled_override.unwrap_or(self.enabled_in_config)
    }
}

/// What the directory holds between two rebuilds.
#[derive(Debug, Default)]
struct Snapshot {
    /// Offered to members: the picker, new authorizations.
    offered: Arc<Payers>,
    /// Known and registered but switched off: not offered, not searchable, no new
    /// authorization; transfers already authorized keep their credentials (the member
    /// consented), so they run to the end.
    withheld: Arc<Payers>,
    /// Admins' overrides of configured payers' `enabled`, by payer id.
    overrides: BTreeMap<String, bool>,
}

/// The live directory: configured payers plus the brands entries staff registered, rebuilt
/// when staff change an entry or switch a payer off or on. Shared by the member pages, the
/// journey and the engine.
#[derive(Clone)]
pub struct Directory {
    current: Arc<RwLock<Arc<Snapshot>>>,
    configured: Arc<Vec<ConfiguredPayer>>,
    /// Configured credentials by name, for entries loaded from brands files.
    credentials: Arc<BTreeMap<String, ClientAuth>>,
    /// The store's directory version last read in ([`Store::payer_directory_version`]); -1
    /// before the first read.
    loaded_version: Arc<AtomicI64>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("payers", &self.current().all().len()).finish_non_exhaustive()
    }
}

/// Whether members can pick a brands entry, and if not, why (the vocabulary's
/// [`PayerState`](baton_vocab::views::console::PayerState)).
pub use baton_vocab::views::console::PayerState as EntryState;

impl Directory {
    /// `configured`: every `[[payers]]` entry, switched on or off in configuration.
    pub fn new(configured: Vec<ConfiguredPayer>, credentials: BTreeMap<String, ClientAuth>) -> Self {
        let directory = Self {
            current: Arc::default(),
            configured: Arc::new(configured),
            credentials: Arc::new(credentials),
            loaded_version: Arc::new(AtomicI64::new(-1)),
        };
        directory.rebuild(&[], &[]);
        directory
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// The directory as it is now (the payers offered to members).
    pub fn current(&self) -> Arc<Payers> {
        Arc::clone(&self.snapshot().offered)
    }

    /// A payer offered to members.
    pub fn get(&self, id: &str) -> Option<Payer> {
        self.current().get(id).cloned()
    }

    /// A payer that is known and registered but switched off (not offered to members).
    pub fn withheld(&self, id: &str) -> Option<Payer> {
        self.snapshot().withheld.get(id).cloned()
    }

    /// A payer offered or switched off: for names on staff pages and for running transfers.
    pub fn known(&self, id: &str) -> Option<Payer> {
        self.get(id).or_else(|| self.withheld(id))
    }

    pub fn search(&self, query: &str) -> Vec<Payer> {
        self.current().search(query).into_iter().cloned().collect()
    }

    pub fn all(&self) -> Vec<Payer> {
        self.current().all().to_vec()
    }

    /// Every payer offered or switched off, in name order.
    pub fn all_known(&self) -> Vec<Payer> {
        let snapshot = self.snapshot();
        let mut payers: Vec<Payer> = snapshot.offered.all().iter().chain(snapshot.withheld.all()).cloned().collect();
        payers.sort_by_key(|p| p.name.to_lowercase());
        payers
    }

    /// The payer a roster or a form names: by its directory id, else by an identifier's value
    /// (the NAIC company code in `system|value`), else by its name or an alias (any case).
    pub fn resolve(&self, text: &str) -> Option<Payer> {
        let text = text.trim();
        if let Some(payer) = self.known(text) {
            return Some(payer);
        }
        let all = self.all_known();
        let by_identifier = all.iter().find(|p| {
            let identifiers =
                p.credentials.backend.as_ref().map(|b| b.payer_identifiers.as_slice()).unwrap_or_default();
            identifiers.iter().any(|i| i == text || i.rsplit_once('|').is_some_and(|(_, value)| value == text))
        });
        let lower = text.to_lowercase();
        by_identifier
            .or_else(|| {
                all.iter()
                    .find(|p| p.name.to_lowercase() == lower || p.aliases.iter().any(|a| a.to_lowercase() == lower))
            })
            .cloned()
    }

    /// The payers from configuration, with what configuration and the admins' overrides say.
    pub fn configured(&self) -> Vec<ConfiguredState> {
        let snapshot = self.snapshot();
        self.configured
            .iter()
            .map(|c| ConfiguredState {
                payer: c.payer.clone(),
                enabled_in_config: c.enabled,
                enabled_override: snapshot.overrides.get(&c.payer.id).copied(),
            })
            .collect()
    }

    /// Whether `id` is a payer from configuration.
    pub fn is_configured(&self, id: &str) -> bool {
        self.configured.iter().any(|c| c.payer.id == id)
    }

    /// Names of the configured credentials staff may pick for a brands entry.
    pub fn credential_names(&self) -> Vec<String> {
        self.credentials.keys().cloned().collect()
    }

    /// Whether `entry` is offered to members, and if not why.
    pub fn state_of(&self, entry: &PayerEntry) -> EntryState {
        if self.configured.iter().any(|c| c.payer.id == entry.id || c.payer.fhir_base.as_str() == entry.fhir_base) {
            return EntryState::Shadowed;
        }
        if entry.withdrawn_at.is_some() {
            return EntryState::Withdrawn;
        }
        match (&entry.client_id, &entry.credential) {
            (Some(client), Some(name)) if !client.is_empty() => {
                if !self.credentials.contains_key(name) {
                    EntryState::UnknownCredential
                } else if entry.enabled {
                    EntryState::Offered
                } else {
                    EntryState::Disabled
                }
            }
            _ => EntryState::NoRegistration,
        }
    }

    /// Rebuilds the directory from configuration, the admins' overrides of configured payers'
    /// `enabled`, and the stored brands entries (with their pinned endpoints and scopes).
    pub fn rebuild(&self, entries: &[PayerEntry], overrides: &[PayerEnabledOverride]) {
        let overrides: BTreeMap<String, bool> = overrides
            .iter()
            .filter(|o| self.is_configured(&o.payer_id))
            .map(|o| (o.payer_id.clone(), o.enabled))
            .collect();
        let mut offered = Vec::new();
        let mut withheld = Vec::new();
        for configured in self.configured.iter() {
            let enabled = overrides.get(&configured.payer.id).copied().unwrap_or(configured.enabled);
            let list = if enabled { &mut offered } else { &mut withheld };
            list.push(configured.payer.clone());
        }
        for entry in entries {
            let enabled = match self.state_of(entry) {
                EntryState::Offered => true,
                // Still known (its transfers run on), not offered.
                EntryState::Disabled | EntryState::Withdrawn => false,
                EntryState::NoRegistration | EntryState::UnknownCredential | EntryState::Shadowed => continue,
            };
            match self.entry_payer(entry) {
                Ok(payer) if enabled => offered.push(payer),
                Ok(payer) => withheld.push(payer),
                Err(problem) => tracing::warn!(payer = %entry.id, problem, "brands entry left out of the directory"),
            }
        }
        let snapshot =
            Snapshot { offered: Arc::new(Payers::new(offered)), withheld: Arc::new(Payers::new(withheld)), overrides };
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(snapshot);
        }
    }

    /// A registered brands entry as a payer: its pinned endpoints and scopes are used exactly
    /// as a configured payer's `authorize_url`, `token_url` and `scopes`.
    fn entry_payer(&self, entry: &PayerEntry) -> Result<Payer, &'static str> {
        let client_id = entry.client_id.clone().ok_or("no client id")?;
        let auth = entry.credential.as_ref().and_then(|c| self.credentials.get(c)).ok_or("unknown credential")?;
        let fhir_base = Url::parse(&entry.fhir_base).map_err(|_| "the FHIR base is not a URL")?;
        if !crate::pinned::is_secure(&fhir_base) {
            return Err("the FHIR base is plain http; Baton connects to plans only over https");
        }
        let pinned = |url: &Option<String>, problem| url.as_deref().map(Url::parse).transpose().map_err(|_| problem);
        let authorize_url = pinned(&entry.authorize_url, "the pinned authorization endpoint is not a URL")?;
        let token_url = pinned(&entry.token_url, "the pinned token endpoint is not a URL")?;
        Ok(Payer {
            id: entry.id.clone(),
            name: entry.name.clone(),
            aliases: entry.aliases.lines().map(str::to_owned).filter(|a| !a.is_empty()).collect(),
            states: entry.states.split_whitespace().map(str::to_owned).collect(),
            logo_url: entry.logo_url.as_deref().and_then(|u| Url::parse(u).ok()),
            fhir_base,
            credentials: PayerCredentials {
                client_id,
                auth: auth.clone(),
                token_url: token_url.as_ref().map(ToString::to_string),
                name: entry.name.clone(),
                backend: None,
            },
            authorize_url,
            token_url,
            scopes: entry.scopes.clone().filter(|s| !s.trim().is_empty()),
        })
    }

    /// Reads the stored entries and overrides, and rebuilds.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        // The version first: a change made while the rest is read moves it again, and the
        // next [`Directory::refresh`] reads that change too.
        let version = store.payer_directory_version().await?;
        let entries = store.payer_entries().await?;
        let overrides = store.payer_enabled_overrides().await?;
        self.rebuild(&entries, &overrides);
        self.loaded_version.store(version, Ordering::Relaxed);
        Ok(())
    }

    /// Rebuilds when the stored directory changed since it was last read in (by another
    /// instance sharing the database, say); whether it did.
    pub async fn refresh(&self, store: &Store) -> Result<bool, StoreError> {
        if store.payer_directory_version().await? == self.loaded_version.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }

    /// Refreshes every `every`, for as long as the process runs: how a change made on one
    /// instance reaches the others. A failed read is logged and tried again next time.
    pub async fn keep_current(self, store: Store, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match self.refresh(&store).await {
                Ok(true) => tracing::info!("payer directory changed in the database: rebuilt"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read the payer directory; trying again later"),
            }
        }
    }
}

/// The engine gets credentials for payers switched off too: a transfer the member already
/// authorized runs to its end (no new authorization starts, see [`Directory::get`]).
impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        let snapshot = self.snapshot();
        snapshot.offered.credentials(payer_id).or_else(|| snapshot.withheld.credentials(payer_id))
    }

    fn fhir_base(&self, payer_id: &str) -> Option<String> {
        let snapshot = self.snapshot();
        snapshot.offered.fhir_base(payer_id).or_else(|| snapshot.withheld.fhir_base(payer_id))
    }
}

#[cfg(test)]
mod tests {
    use baton_transfer::ClientAuth;

    use super::*;

    fn payer(id: &str, name: &str, aliases: &[&str], states: &[&str]) -> Payer {
        Payer {
            id: id.into(),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            states: states.iter().map(|s| s.to_string()).collect(),
            logo_url: None,
            fhir_base: Url::parse("https://example.org/fhir").unwrap(),
            authorize_url: None,
            token_url: None,
            scopes: None,
            credentials: PayerCredentials {
                client_id: "c".into(),
                auth: ClientAuth::Secret("s".into()),
                token_url: None,
                name: name.into(),
                backend: None,
            },
        }
    }

    fn directory() -> Payers {
        Payers::new(vec![
            payer("riverbend", "Riverbend Health Plan", &["RHP"], &["IL", "IN"]),
            payer("aspen", "Aspen Mutual", &["Aspen Care"], &["CO"]),
            payer("lakes", "Great Lakes Health", &[], &["MI", "IL"]),
        ])
    }

    fn ids(found: Vec<&Payer>) -> Vec<&str> {
        found.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn finds_plans_by_name_alias_or_state() {
        let payers = directory();
        assert_eq!(ids(payers.search("")), ["aspen", "lakes", "riverbend"]);
        assert_eq!(ids(payers.search("river")), ["riverbend"]);
        assert_eq!(ids(payers.search("rhp")), ["riverbend"]);
        assert_eq!(ids(payers.search("care")), ["aspen"]);
        assert_eq!(ids(payers.search("il")), ["lakes", "riverbend"]);
        assert_eq!(ids(payers.search("health il")), ["lakes", "riverbend"]);
        assert_eq!(ids(payers.search("great in")), Vec::<&str>::new());
        assert!(payers.search("nobody").is_empty());
    }

    fn entry(id: &str, base: &str, client: Option<&str>, credential: Option<&str>, enabled: bool) -> PayerEntry {
        PayerEntry {
            id: id.into(),
            name: format!("{id} plan"),
            aliases: "Alias One\nAlias Two".into(),
            states: "MI WI".into(),
            logo_url: None,
            fhir_base: base.into(),
            source_url: "https://brands.example/brands.json".into(),
            client_id: client.map(str::to_owned),
            credential: credential.map(str::to_owned),
            enabled,
            updated_at: 0,
            authorize_url: None,
            token_url: None,
            scopes: None,
            withdrawn_at: None,
        }
    }

    fn shared_credential() -> BTreeMap<String, ClientAuth> {
        BTreeMap::from([("shared".to_owned(), ClientAuth::Secret("s".into()))])
    }

    fn configured(enabled: &[(&str, bool)]) -> Vec<ConfiguredPayer> {
        let payers = directory();
        enabled
            .iter()
            .map(|(id, enabled)| ConfiguredPayer {
                payer: payers.get(id).cloned().expect("a test payer"),
                enabled: *enabled,
            })
            .collect()
    }

    fn switched(id: &str, enabled: bool) -> PayerEnabledOverride {
        PayerEnabledOverride { payer_id: id.into(), enabled, updated_at: 1 }
    }

    #[test]
    fn brands_entries_are_offered_once_registered() {
        let configured = directory().all().iter().cloned().map(ConfiguredPayer::from).collect();
        let directory = Directory::new(configured, shared_credential());
        let entries = vec![
            entry("brand-a", "https://a.example/fhir", Some("baton"), Some("shared"), true),
            entry("brand-b", "https://b.example/fhir", None, None, true),
            entry("brand-c", "https://c.example/fhir", Some("baton"), Some("missing"), true),
            entry("brand-d", "https://d.example/fhir", Some("baton"), Some("shared"), false),
            entry("brand-e", "https://example.org/fhir", Some("baton"), Some("shared"), true),
        ];
        let states: Vec<EntryState> = entries.iter().map(|e| directory.state_of(e)).collect();
        assert_eq!(
            states,
            [
                EntryState::Offered,
                EntryState::NoRegistration,
                EntryState::UnknownCredential,
                EntryState::Disabled,
                EntryState::Shadowed
            ]
        );
        directory.rebuild(&entries, &[]);
        let a = directory.get("brand-a").expect("offered");
        assert_eq!(a.aliases, ["Alias One", "Alias Two"]);
        assert_eq!(a.credentials.client_id, "baton");
        assert_eq!(directory.search("wi").len(), 1, "found by state");
        for hidden in ["brand-b", "brand-c", "brand-d", "brand-e"] {
            assert!(directory.get(hidden).is_none(), "{hidden}");
        }
        assert_eq!(directory.all().len(), 4, "three configured and one registered");
        assert!(directory.credentials("brand-a").is_some(), "the engine sees it too");
        assert!(directory.withheld("brand-d").is_some(), "registered but switched off");
        assert!(directory.credentials("brand-d").is_some(), "its running transfers go on");
        assert!(directory.known("brand-b").is_none(), "not registered: unknown to the engine");
    }

    #[test]
    fn an_entry_its_brands_file_no_longer_lists_is_not_offered_but_still_known() {
        let directory = Directory::new(vec![], shared_credential());
        let listed = entry("brand-a", "https://a.example/fhir", Some("baton"), Some("shared"), true);
        let dropped = PayerEntry {
            withdrawn_at: Some(5),
            ..entry("brand-w", "https://w.example/fhir", Some("baton"), Some("shared"), true)
        };
        assert_eq!(directory.state_of(&dropped), EntryState::Withdrawn);
        let unregistered =
            PayerEntry { withdrawn_at: Some(5), ..entry("brand-x", "https://x.example/fhir", None, None, true) };
        assert_eq!(directory.state_of(&unregistered), EntryState::Withdrawn);
        directory.rebuild(&[listed, dropped, unregistered], &[]);
        assert_eq!(ids(directory.current().search("")), ["brand-a"]);
        assert!(directory.get("brand-w").is_none(), "not offered to members");
        assert!(directory.credentials("brand-w").is_some(), "transfers it already authorized run on");
        assert!(directory.known("brand-x").is_none());
    }

    #[test]
    fn an_admin_override_wins_over_configuration() {
        let directory =
            Directory::new(configured(&[("riverbend", true), ("aspen", false), ("lakes", true)]), shared_credential());
        assert_eq!(ids(directory.current().search("")), ["lakes", "riverbend"], "aspen is off in configuration");
        assert!(directory.withheld("aspen").is_some());

        // Riverbend switched off, Aspen switched on, Lakes left to configuration.
        directory
            .rebuild(&[], &[switched("riverbend", false), switched("aspen", true), switched("not-configured", false)]);
        assert_eq!(ids(directory.current().search("")), ["aspen", "lakes"]);
        assert!(directory.get("riverbend").is_none(), "not offered");
        assert!(directory.search("river").is_empty(), "not searchable");
        assert!(directory.search("IN").is_empty(), "not found by state either");
        assert_eq!(directory.withheld("riverbend").map(|p| p.name), Some("Riverbend Health Plan".into()));
        assert_eq!(
            directory.credentials("riverbend").map(|c| c.client_id),
            Some("c".into()),
            "a transfer already authorized keeps its credentials"
        );
        assert_eq!(directory.all_known().len(), 3);
        let states: Vec<(String, bool, Option<bool>, bool)> = directory
            .configured()
            .into_iter()
            .map(|c| (c.payer.id.clone(), c.enabled_in_config, c.enabled_override, c.enabled()))
            .collect();
        assert_eq!(
            states,
            [
                ("riverbend".to_owned(), true, Some(false), false),
                ("aspen".to_owned(), false, Some(true), true),
                ("lakes".to_owned(), true, None, true),
            ]
        );

        // Back on; with no overrides configuration decides again.
        directory.rebuild(&[], &[switched("riverbend", true)]);
        assert!(directory.get("riverbend").is_some());
        directory.rebuild(&[], &[]);
        assert!(directory.get("aspen").is_none(), "configuration says off");
    }

    #[test]
    fn a_switched_off_configured_payer_still_shadows_its_brands_entry() {
        let directory = Directory::new(configured(&[("riverbend", true)]), shared_credential());
        directory.rebuild(&[], &[switched("riverbend", false)]);
        let same_base = entry("brand-example", "https://example.org/fhir", Some("baton"), Some("shared"), true);
        assert_eq!(directory.state_of(&same_base), EntryState::Shadowed);
        directory.rebuild(&[same_base], &[switched("riverbend", false)]);
        assert!(directory.all().is_empty(), "switching a configured plan off does not let a brands copy in");
    }

    #[test]
    fn brands_entries_carry_their_pinned_endpoints_and_scopes() {
        let directory = Directory::new(vec![], shared_credential());
        let pinned = PayerEntry {
            authorize_url: Some("https://auth.a.example/authorize".into()),
            token_url: Some("https://auth.a.example/token".into()),
            scopes: Some("launch/patient openid patient/*.read".into()),
            ..entry("brand-a", "https://a.example/fhir", Some("baton"), Some("shared"), true)
        };
        directory.rebuild(&[pinned], &[]);
        let payer = directory.get("brand-a").expect("offered");
        assert_eq!(payer.authorize_url.as_ref().map(Url::as_str), Some("https://auth.a.example/authorize"));
        assert_eq!(payer.token_url.as_ref().map(Url::as_str), Some("https://auth.a.example/token"));
        assert_eq!(payer.scopes.as_deref(), Some("launch/patient openid patient/*.read"));
        assert_eq!(
            payer.credentials.token_url.as_deref(),
            Some("https://auth.a.example/token"),
            "the engine refreshes tokens there too"
        );
    }

    #[test]
    fn credentials_come_from_the_directory() {
        let payers = directory();
        assert_eq!(payers.credentials("aspen").map(|c| c.name), Some("Aspen Mutual".into()));
        assert!(payers.credentials("unknown").is_none());
    }
}
