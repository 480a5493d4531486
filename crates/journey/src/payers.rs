//! The payer directory: the previous plans a member can bring records from, and this plan's
//! registration at each (client id and credential, which come from configuration only).

use baton_transfer::{PayerCredentials, PayerDirectory};
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

    #[test]
    fn credentials_come_from_the_directory() {
        let payers = directory();
        assert_eq!(payers.credentials("aspen").map(|c| c.name), Some("Aspen Mutual".into()));
        assert!(payers.credentials("unknown").is_none());
    }
}
