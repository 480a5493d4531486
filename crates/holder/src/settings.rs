//! The data-holder side's configuration (the `[holder]` table of `baton.toml`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HolderSettings {
    /// Lifetime of access tokens.
    pub access_token_minutes: u32,
    /// Lifetime of refresh tokens (each exchange issues a new one).
    pub refresh_token_days: u32,
    pub brand: BrandSettings,
    /// Client apps allowed to ask members for their records (other plans' Batons, …).
    pub clients: Vec<ClientSettings>,
    /// This plan's identifiers as other plans name it in a member's Consent, `system|value`
    /// (the NAIC company code: `urn:oid:2.16.840.1.113883.6.300|12345`). When set, a Consent
    /// that does not name one of them as the source is not honoured.
    pub identifiers: Vec<String>,
    /// `$member-match`: how given names are compared (`ignore`, `folded`: without case or
    /// accents, `exact`); member id, family name and birth date always must agree.
    pub match_given_name: baton_vocab::GivenNameRule,
}

impl Default for HolderSettings {
    fn default() -> Self {
        Self {
            access_token_minutes: 60,
            refresh_token_days: 90,
            brand: BrandSettings::default(),
            clients: vec![],
            identifiers: vec![],
            match_given_name: baton_vocab::GivenNameRule::default(),
        }
    }
}

/// How the plan presents itself in its User-access Brand Bundle.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrandSettings {
    /// Logo (SVG or PNG); defaults to this Baton's `/favicon.svg`.
    pub logo_url: Option<Url>,
    /// The plan's public website; defaults to the public URL.
    pub website: Option<Url>,
    /// Other names members know the plan by.
    pub aliases: Vec<String>,
    /// US states the plan serves (two-letter codes).
    pub states: Vec<String>,
}

/// A registered client app. Its secret is redacted in `Debug` output and left out when
/// serialized.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    pub name: String,
    /// Exact redirect URIs. None: another plan's system, which may only use
    /// `client_credentials` with a signed assertion (SMART Backend Services).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Shared secret (client-confidential-symmetric); stored hashed.
    #[serde(default, skip_serializing)]
    pub secret: Option<SecretString>,
    /// Inline JWK Set JSON (client-confidential-asymmetric, private_key_jwt).
    #[serde(default)]
    pub jwks: Option<String>,
    /// Or where to fetch the JWK Set.
    #[serde(default)]
    pub jwks_url: Option<Url>,
    /// The most this client may be granted.
    #[serde(default = "default_client_scopes")]
    pub scopes: String,
    /// Another plan's identifiers (`system|value`, such as its NAIC company code): when set, a
    /// Consent it sends must name one of them as the recipient.
    #[serde(default)]
    pub identifiers: Vec<String>,
}

pub fn default_client_scopes() -> String {
    "launch/patient openid fhirUser offline_access patient/*.read patient/*.rs".into()
}
