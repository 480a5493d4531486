//! The payer directory: the previous plans a member can bring records from, and this plan's
//! registration at each (client id and credential, which come from configuration only).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use baton_store::{PayerEntry, Store, StoreError};
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

/// Every enabled previous plan, in name order.
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
}

/// The live directory: configured payers plus the brands entries staff registered, rebuilt
/// when staff change an entry. Shared by the member pages, the journey and the engine.
#[derive(Clone)]
pub struct Directory {
    current: Arc<RwLock<Arc<Payers>>>,
    configured: Arc<Vec<Payer>>,
    /// Configured credentials by name, for entries loaded from brands files.
    credentials: Arc<BTreeMap<String, ClientAuth>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("payers", &self.current().all().len()).finish_non_exhaustive()
    }
}

/// Why a brands entry is not offered to members yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Offered,
    Disabled,
    NoRegistration,
    UnknownCredential,
    /// A configured payer has the same id or FHIR base (configuration wins).
    Shadowed,
}

impl Directory {
    pub fn new(configured: Vec<Payer>, credentials: BTreeMap<String, ClientAuth>) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(Payers::new(configured.clone())))),
            configured: Arc::new(configured),
            credentials: Arc::new(credentials),
        }
    }

    /// The directory as it is now.
    pub fn current(&self) -> Arc<Payers> {
        self.current.read().map(|p| Arc::clone(&p)).unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Payer> {
        self.current().get(id).cloned()
    }

    pub fn search(&self, query: &str) -> Vec<Payer> {
        self.current().search(query).into_iter().cloned().collect()
    }

    pub fn all(&self) -> Vec<Payer> {
        self.current().all().to_vec()
    }

    /// The payers from configuration (staff cannot change these here).
    pub fn configured(&self) -> &[Payer] {
        &self.configured
    }

    /// Names of the configured credentials staff may pick for a brands entry.
    pub fn credential_names(&self) -> Vec<String> {
        self.credentials.keys().cloned().collect()
    }

    /// Whether `entry` is offered to members, and if not why.
    pub fn state_of(&self, entry: &PayerEntry) -> EntryState {
        if self.configured.iter().any(|p| p.id == entry.id || p.fhir_base.as_str() == entry.fhir_base) {
            return EntryState::Shadowed;
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

    /// Rebuilds the directory from configuration and the stored brands entries.
    pub fn rebuild(&self, entries: &[PayerEntry]) {
        let mut payers: Vec<Payer> = self.configured.to_vec();
        for entry in entries.iter().filter(|e| self.state_of(e) == EntryState::Offered) {
            let (Some(client_id), Some(auth)) =
                (entry.client_id.clone(), entry.credential.as_ref().and_then(|c| self.credentials.get(c)))
            else {
                continue;
            };
            let Ok(fhir_base) = Url::parse(&entry.fhir_base) else { continue };
            payers.push(Payer {
                id: entry.id.clone(),
                name: entry.name.clone(),
                aliases: entry.aliases.lines().map(str::to_owned).filter(|a| !a.is_empty()).collect(),
                states: entry.states.split_whitespace().map(str::to_owned).collect(),
                logo_url: entry.logo_url.as_deref().and_then(|u| Url::parse(u).ok()),
                fhir_base,
                authorize_url: None,
                token_url: None,
                scopes: None,
                credentials: PayerCredentials {
                    client_id,
                    auth: auth.clone(),
                    token_url: None,
                    name: entry.name.clone(),
                },
            });
        }
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(Payers::new(payers));
        }
    }

    /// Reads the stored entries and rebuilds.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let entries = store.payer_entries().await?;
        self.rebuild(&entries);
        Ok(())
    }
}

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        self.current().credentials(payer_id)
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
        }
    }

    #[test]
    fn brands_entries_are_offered_once_registered() {
        let credentials = BTreeMap::from([("shared".to_owned(), ClientAuth::Secret("s".into()))]);
        let directory = Directory::new(directory().all().to_vec(), credentials);
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
        directory.rebuild(&entries);
        let a = directory.get("brand-a").expect("offered");
        assert_eq!(a.aliases, ["Alias One", "Alias Two"]);
        assert_eq!(a.credentials.client_id, "baton");
        assert_eq!(directory.search("wi").len(), 1, "found by state");
        for hidden in ["brand-b", "brand-c", "brand-d", "brand-e"] {
            assert!(directory.get(hidden).is_none(), "{hidden}");
        }
        assert_eq!(directory.all().len(), 4, "three configured and one registered");
        assert!(directory.credentials("brand-a").is_some(), "the engine sees it too");
    }

    #[test]
    fn credentials_come_from_the_directory() {
        let payers = directory();
        assert_eq!(payers.credentials("aspen").map(|c| c.name), Some("Aspen Mutual".into()));
        assert!(payers.credentials("unknown").is_none());
    }
}
