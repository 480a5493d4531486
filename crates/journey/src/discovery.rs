//! SMART discovery: a previous plan's `.well-known/smart-configuration`, cached for a while,
//! and what this plan asks it for.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::payers::Payer;

/// The parts of a SMART configuration this plan uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmartConfiguration {
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// RFC 7009 token revocation, where the plan offers it.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

/// Where to send the member and where to redeem the code, and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub scope: String,
    /// Where to end an access the member withdraws (only from a document that describes the
    /// authorization server Baton uses; https, or http to this machine).
    pub revocation: Option<Url>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error("the plan's SMART configuration could not be read: {0}")]
    Unreachable(String),
    /// The plan answered, with a client error: it publishes no SMART configuration there.
    #[error("the plan publishes no SMART configuration: {0}")]
    NotPublished(String),
    #[error("the plan's SMART configuration is not valid JSON: {0}")]
    Invalid(String),
    #[error("the plan does not offer PKCE with S256, which this plan requires")]
    NoS256,
    #[error("the plan's SMART configuration has no {0}")]
    Missing(&'static str),
    #[error("the plan's {0} is not a valid URL")]
    BadUrl(&'static str),
    /// A discovered endpoint over plain http off this machine.
    #[error("the plan's {0} is plain http; Baton sends members' sign-ins and tokens only over https")]
    Insecure(&'static str),
}

impl DiscoveryError {
    /// Whether trying again later can help: the plan could not be reached (rather than being
    /// reached and found not set up for members to share online).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DiscoveryError::Unreachable(_))
    }
}

/// What discovery found for one plan the last time this instance looked, and what Baton used:
/// shown on the plan's card in the staff directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryReport {
    /// What the plan's `.well-known/smart-configuration` said (its authorization and token
    /// endpoints, whether it offers S256), or why it could not be read.
    pub found: Result<Found, DiscoveryError>,
    /// Why the document was not used, when it was not: both endpoints are pinned, and it
    /// describes another server.
    pub ignored: Option<String>,
    /// What Baton uses (the pinned or discovered endpoints), or why it cannot go on.
    pub outcome: Result<Endpoints, DiscoveryError>,
}

impl DiscoveryReport {
    /// As staff see it on the plan's card.
    pub fn view(&self) -> baton_vocab::views::DiscoveryView {
        use baton_vocab::views::{DiscoveryView, FoundConfiguration, UsedEndpoints};
        DiscoveryView {
            found: self.found.as_ref().ok().map(|f| FoundConfiguration {
                authorization_endpoint: f.authorization_endpoint.clone(),
                token_endpoint: f.token_endpoint.clone(),
                grant_types: f.grant_types.clone(),
                s256: f.s256,
            }),
            unreadable: self.found.as_ref().err().map(ToString::to_string),
            ignored: self.ignored.clone(),
            used: self.outcome.as_ref().ok().map(|e| UsedEndpoints {
                authorize: e.authorize.to_string(),
                token: e.token.to_string(),
                scope: e.scope.clone(),
            }),
            problem: self.outcome.as_ref().err().map(ToString::to_string),
        }
    }
}

/// The parts of a SMART configuration staff are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub grant_types: Vec<String>,
    pub s256: bool,
}

/// Scopes asked for besides the data: the patient picked at sign-in, who signed in, and a
/// refresh token so the pull can go on after the member leaves.
const CONTEXT_SCOPES: &str = "launch/patient openid fhirUser offline_access";

/// Reads and caches SMART configurations.
#[derive(Clone)]
pub struct Discovery {
    http: reqwest::Client,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, (Instant, SmartConfiguration)>>>,
    /// Origins of the authorization endpoints seen so far (pages allow forms to go there).
    authorize_origins: Arc<Mutex<BTreeSet<String>>>,
    /// The last discovery per payer id: staff see it in the directory, e.g. a plan that does
    /// not offer S256, or whose document describes another server than the pinned one.
    reports: Arc<Mutex<HashMap<String, DiscoveryReport>>>,
}

impl Discovery {
    pub fn new(http: reqwest::Client, ttl: Duration) -> Self {
        Self { http, ttl, cache: Arc::default(), authorize_origins: Arc::default(), reports: Arc::default() }
    }

    /// The plan's endpoints and the scopes to ask for. Pinned endpoints win over discovery:
    /// when both are pinned, a plan without discovery still works, and a discovery document
    /// that does not describe the pinned authorization server (a backend-services document
    /// where the member-facing server is another product) is only reported, never a veto —
    /// Baton sends PKCE S256 whatever a document says.
    pub async fn endpoints(&self, payer: &Payer) -> Result<Endpoints, DiscoveryError> {
        let found = self.configuration(&payer.fhir_base).await;
        let report = decide(payer, found);
        if let Ok(endpoints) = &report.outcome
            && let Ok(mut origins) = self.authorize_origins.lock()
        {
            origins.insert(endpoints.authorize.origin().ascii_serialization());
        }
        if let Some(ignored) = &report.ignored {
            tracing::info!(payer = %payer.id, ignored, "SMART configuration not used; the pinned endpoints are");
        }
        let outcome = report.outcome.clone();
        if let Ok(mut reports) = self.reports.lock() {
            reports.insert(payer.id.clone(), report);
        }
        outcome
    }

    /// What went wrong the last time this payer's discovery was tried, if it did.
    pub fn problem(&self, payer_id: &str) -> Option<String> {
        self.report(payer_id).and_then(|r| r.outcome.err()).map(|e| e.to_string())
    }

    /// The last discovery of this payer on this instance, if there was one.
    pub fn report(&self, payer_id: &str) -> Option<DiscoveryReport> {
        self.reports.lock().ok().and_then(|r| r.get(payer_id).cloned())
    }

    /// Origins of every authorization endpoint found so far.
    pub fn authorize_origins(&self) -> BTreeSet<String> {
        self.authorize_origins.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The plan's SMART configuration, from the cache while it is fresh.
    pub async fn configuration(&self, fhir_base: &Url) -> Result<SmartConfiguration, DiscoveryError> {
        let key = fhir_base.as_str().trim_end_matches('/').to_owned();
        if let Ok(cache) = self.cache.lock()
            && let Some((at, configuration)) = cache.get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(configuration.clone());
        }
        let url = format!("{key}/.well-known/smart-configuration");
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| DiscoveryError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let said = format!("{url} answered {status}");
            // A timeout or "too many requests" may pass; a missing document will not.
            let passes = status.is_server_error()
                || matches!(status, reqwest::StatusCode::REQUEST_TIMEOUT | reqwest::StatusCode::TOO_MANY_REQUESTS);
            return Err(if passes { DiscoveryError::Unreachable(said) } else { DiscoveryError::NotPublished(said) });
        }
        let body = response.bytes().await.map_err(|e| DiscoveryError::Unreachable(e.without_url().to_string()))?;
        let configuration: SmartConfiguration =
            serde_json::from_slice(&body).map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (Instant::now(), configuration.clone()));
        }
        Ok(configuration)
    }
}

/// What Baton uses for `payer`, given what its FHIR base's SMART configuration said.
pub fn decide(payer: &Payer, found: Result<SmartConfiguration, DiscoveryError>) -> DiscoveryReport {
    let resolve = |value: &str| base_with_slash(&payer.fhir_base).join(value).ok();
    let pinned = payer.authorize_url.is_some() && payer.token_url.is_some();
    let summary = found
        .as_ref()
        .map(|c| Found {
            authorization_endpoint: c.authorization_endpoint.clone(),
            token_endpoint: c.token_endpoint.clone(),
            grant_types: c.grant_types_supported.clone(),
            s256: c.code_challenge_methods_supported.iter().any(|m| m == "S256"),
        })
        .map_err(Clone::clone);
    let mut ignored = None;
    let configuration = match found {
        Ok(configuration) if pinned => {
            let describes_pinned = configuration.authorization_endpoint.as_deref().and_then(resolve).as_ref()
                == payer.authorize_url.as_ref();
            if describes_pinned {
                if !configuration.code_challenge_methods_supported.iter().any(|m| m == "S256") {
                    // Pinned by this plan's staff: Baton sends S256 all the same.
                    ignored = Some(
                        "it does not list S256 among its code challenge methods; the pinned endpoints are used, with S256"
                            .to_owned(),
                    );
                }
                Some(configuration)
            } else {
                ignored = Some(match &configuration.authorization_endpoint {
                    Some(other) => format!(
                        "it describes another authorization server ({other}), not the pinned one; the pinned endpoints are used"
                    ),
                    None => "it names no authorization endpoint (a backend-services document); the pinned endpoints are used"
                        .to_owned(),
                });
                None
            }
        }
        Ok(configuration) => Some(configuration),
        Err(error) if pinned => {
            ignored = Some(format!("{error}; the pinned endpoints are used"));
            None
        }
        Err(error) => return DiscoveryReport { found: summary, ignored, outcome: Err(error) },
    };
    let outcome = endpoints_from(payer, configuration.as_ref(), &resolve);
    DiscoveryReport { found: summary, ignored, outcome }
}

fn endpoints_from(
    payer: &Payer,
    configuration: Option<&SmartConfiguration>,
    resolve: &dyn Fn(&str) -> Option<Url>,
) -> Result<Endpoints, DiscoveryError> {
    let pinned = payer.authorize_url.is_some() && payer.token_url.is_some();
    if let Some(configuration) = configuration
        && !pinned
        && !configuration.code_challenge_methods_supported.iter().any(|m| m == "S256")
    {
        return Err(DiscoveryError::NoS256);
    }
    let discovered = |field: Option<&String>, name: &'static str| -> Result<Url, DiscoveryError> {
        let value = field.ok_or(DiscoveryError::Missing(name))?;
        // Relative endpoints are resolved against the FHIR base (legacy servers).
        let url = resolve(value).ok_or(DiscoveryError::BadUrl(name))?;
        if !crate::pinned::is_secure(&url) {
            return Err(DiscoveryError::Insecure(name));
        }
        Ok(url)
    };
    let authorize = match (&payer.authorize_url, configuration) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => discovered(c.authorization_endpoint.as_ref(), "authorization_endpoint")?,
        (None, None) => return Err(DiscoveryError::Missing("authorization_endpoint")),
    };
    let token = match (&payer.token_url, configuration) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => discovered(c.token_endpoint.as_ref(), "token_endpoint")?,
        (None, None) => return Err(DiscoveryError::Missing("token_endpoint")),
    };
    let scope = match &payer.scopes {
        Some(scopes) => scopes.clone(),
        None => scopes_for(configuration.map(|c| c.capabilities.as_slice()).unwrap_or_default()),
    };
    let revocation = configuration
        .and_then(|c| c.revocation_endpoint.as_deref())
        .and_then(resolve)
        .filter(crate::pinned::is_secure);
    Ok(Endpoints { authorize, token, scope, revocation })
}

/// SMART v2 scopes when the plan offers them, else v1; always the context scopes.
pub fn scopes_for(capabilities: &[String]) -> String {
    let data = if capabilities.iter().any(|c| c == "permission-v2") { "patient/*.rs" } else { "patient/*.read" };
    format!("{CONTEXT_SCOPES} {data}")
}

/// What a v1-only plan that refuses the wildcard (`invalid_scope`) is asked for instead: the
/// per-type read scopes CARIN BB requires every server to support (spec §1.2).
pub fn carin_scopes() -> String {
    format!(
        "{CONTEXT_SCOPES} patient/ExplanationOfBenefit.read patient/Coverage.read patient/Patient.read \
         patient/Organization.read patient/Practitioner.read"
    )
}

/// Whether `scope` asks for every type at once (`patient/*.read`, `patient/*.rs`…).
pub fn asks_for_every_type(scope: &str) -> bool {
    scope.split_whitespace().any(|s| s.starts_with("patient/*."))
}

fn base_with_slash(base: &Url) -> Url {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_scopes_when_offered_else_v1() {
        let v2 = scopes_for(&["permission-v1".into(), "permission-v2".into()]);
        assert_eq!(v2, "launch/patient openid fhirUser offline_access patient/*.rs");
        assert_eq!(
            scopes_for(&["permission-v1".into()]),
            "launch/patient openid fhirUser offline_access patient/*.read"
        );
        assert!(scopes_for(&[]).ends_with("patient/*.read"));
    }

    fn payer(pinned: bool) -> Payer {
        let url = |u: &str| Url::parse(u).unwrap();
        Payer {
            id: "third-party".into(),
            name: "Third Party Health".into(),
            aliases: vec![],
            states: vec![],
            logo_url: None,
            fhir_base: url("https://fhir.third.example/r4"),
            authorize_url: pinned.then(|| url("https://login.third.example/oauth/authorize")),
            token_url: pinned.then(|| url("https://login.third.example/oauth/token")),
            scopes: None,
            credentials: baton_transfer::PayerCredentials {
                client_id: "baton".into(),
                auth: baton_transfer::ClientAuth::Secret("s".into()),
                token_url: None,
                name: "Third Party Health".into(),
                backend: None,
            },
        }
    }

    /// A FHIR base that publishes a SMART configuration for backend services only.
    fn backend_services_document() -> SmartConfiguration {
        serde_json::from_value(serde_json::json!({
            "token_endpoint": "https://fhir.third.example/auth/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "capabilities": ["client-confidential-asymmetric", "permission-v2"]
        }))
        .unwrap()
    }

    #[test]
    fn pinned_endpoints_win_over_a_document_that_describes_another_server() {
        let report = decide(&payer(true), Ok(backend_services_document()));
        let used = report.outcome.expect("not vetoed");
        assert_eq!(used.authorize.as_str(), "https://login.third.example/oauth/authorize");
        assert_eq!(used.token.as_str(), "https://login.third.example/oauth/token");
        assert!(used.scope.ends_with("patient/*.read"), "its capabilities are not the pinned server's: {}", used.scope);
        assert!(report.ignored.unwrap().contains("pinned endpoints are used"));
        let found = report.found.unwrap();
        assert!(!found.s256 && found.grant_types == ["client_credentials"], "what it said is kept for staff");
    }

    #[test]
    fn pinned_endpoints_work_without_discovery() {
        let report = decide(&payer(true), Err(DiscoveryError::Unreachable("connection refused".into())));
        assert!(report.outcome.is_ok());
        assert!(report.ignored.unwrap().contains("connection refused"));
    }

    #[test]
    fn a_document_that_describes_the_pinned_server_is_believed_but_cannot_veto_it() {
        let mut document = backend_services_document();
        document.authorization_endpoint = Some("https://login.third.example/oauth/authorize".into());
        document.capabilities.push("permission-v2".into());
        let report = decide(&payer(true), Ok(document.clone()));
        let used = report.outcome.expect("pinned endpoints are not vetoed for want of S256");
        assert!(used.scope.ends_with("patient/*.rs"), "its capabilities are the pinned server's: {}", used.scope);
        assert!(report.ignored.unwrap().contains("S256"), "staff are told");
        document.code_challenge_methods_supported = vec!["S256".into()];
        assert!(decide(&payer(true), Ok(document)).ignored.is_none());
    }

    #[test]
    fn a_plan_without_a_smart_configuration_is_not_set_up_rather_than_unreachable() {
        let missing = decide(&payer(false), Err(DiscoveryError::NotPublished("answered 404 Not Found".into())));
        assert!(!missing.outcome.unwrap_err().is_unreachable());
    }

    #[test]
    fn without_pins_the_document_decides() {
        let mut document = backend_services_document();
        document.authorization_endpoint = Some("https://fhir.third.example/auth/authorize".into());
        assert_eq!(decide(&payer(false), Ok(document.clone())).outcome, Err(DiscoveryError::NoS256));
        document.code_challenge_methods_supported = vec!["S256".into()];
        let used = decide(&payer(false), Ok(document)).outcome.unwrap();
        assert_eq!(used.token.as_str(), "https://fhir.third.example/auth/token");
        let unreachable = decide(&payer(false), Err(DiscoveryError::Unreachable("timed out".into())));
        assert!(unreachable.outcome.unwrap_err().is_unreachable());
    }

    #[test]
    fn a_discovered_endpoint_over_plain_http_is_refused() {
        let mut document = backend_services_document();
        document.code_challenge_methods_supported = vec!["S256".into()];
        document.authorization_endpoint = Some("http://fhir.third.example/auth/authorize".into());
        let refused = decide(&payer(false), Ok(document.clone())).outcome.unwrap_err();
        assert_eq!(refused, DiscoveryError::Insecure("authorization_endpoint"));
        assert!(!refused.is_unreachable(), "trying again cannot help");
        document.authorization_endpoint = Some("https://fhir.third.example/auth/authorize".into());
        document.token_endpoint = Some("http://fhir.third.example/auth/token".into());
        assert_eq!(decide(&payer(false), Ok(document)).outcome, Err(DiscoveryError::Insecure("token_endpoint")));
    }

    #[test]
    fn relative_endpoints_resolve_against_the_fhir_base() {
        let base = Url::parse("https://plan.example/r4/fhir").unwrap();
        assert_eq!(
            base_with_slash(&base).join("auth/token").unwrap().as_str(),
            "https://plan.example/r4/fhir/auth/token"
        );
        assert_eq!(base_with_slash(&base).join("/token").unwrap().as_str(), "https://plan.example/token");
    }
}
