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
}

/// Where to send the member and where to redeem the code, and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub scope: String,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error("the plan's SMART configuration could not be read: {0}")]
    Unreachable(String),
    #[error("the plan's SMART configuration is not valid JSON: {0}")]
    Invalid(String),
    #[error("the plan does not offer PKCE with S256, which this plan requires")]
    NoS256,
    #[error("the plan's SMART configuration has no {0}")]
    Missing(&'static str),
    #[error("the plan's {0} is not a valid URL")]
    BadUrl(&'static str),
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
    /// The last discovery problem per payer id (cleared when discovery works again): staff see
    /// it in the directory, e.g. a plan that does not offer S256.
    problems: Arc<Mutex<HashMap<String, String>>>,
}

impl Discovery {
    pub fn new(http: reqwest::Client, ttl: Duration) -> Self {
        Self { http, ttl, cache: Arc::default(), authorize_origins: Arc::default(), problems: Arc::default() }
    }

    /// The plan's endpoints and the scopes to ask for. Pinned endpoints win over discovery;
    /// when both are pinned, a plan without discovery still works.
    pub async fn endpoints(&self, payer: &Payer) -> Result<Endpoints, DiscoveryError> {
        let result = self.find_endpoints(payer).await;
        if let Ok(mut problems) = self.problems.lock() {
            match &result {
                Ok(_) => problems.remove(&payer.id),
                Err(error) => problems.insert(payer.id.clone(), error.to_string()),
            };
        }
        result
    }

    /// What went wrong the last time this payer's discovery was tried, if it did.
    pub fn problem(&self, payer_id: &str) -> Option<String> {
        self.problems.lock().ok().and_then(|p| p.get(payer_id).cloned())
    }

    async fn find_endpoints(&self, payer: &Payer) -> Result<Endpoints, DiscoveryError> {
        let configuration = match self.configuration(&payer.fhir_base).await {
            Ok(configuration) => Some(configuration),
            Err(error) if payer.authorize_url.is_some() && payer.token_url.is_some() => {
                tracing::warn!(payer = %payer.id, %error, "no SMART configuration; using the pinned endpoints");
                None
            }
            Err(error) => return Err(error),
        };
        if let Some(configuration) = &configuration
            && !configuration.code_challenge_methods_supported.iter().any(|m| m == "S256")
        {
            return Err(DiscoveryError::NoS256);
        }
        let discovered = |field: Option<&String>, name: &'static str| -> Result<Url, DiscoveryError> {
            let value = field.ok_or(DiscoveryError::Missing(name))?;
            // Relative endpoints are resolved against the FHIR base (legacy servers).
            base_with_slash(&payer.fhir_base).join(value).map_err(|_| DiscoveryError::BadUrl(name))
        };
        let authorize = match (&payer.authorize_url, &configuration) {
            (Some(url), _) => url.clone(),
            (None, Some(c)) => discovered(c.authorization_endpoint.as_ref(), "authorization_endpoint")?,
            (None, None) => return Err(DiscoveryError::Missing("authorization_endpoint")),
        };
        let token = match (&payer.token_url, &configuration) {
            (Some(url), _) => url.clone(),
            (None, Some(c)) => discovered(c.token_endpoint.as_ref(), "token_endpoint")?,
            (None, None) => return Err(DiscoveryError::Missing("token_endpoint")),
        };
        if let Ok(mut origins) = self.authorize_origins.lock() {
            origins.insert(authorize.origin().ascii_serialization());
        }
        let scope = match &payer.scopes {
            Some(scopes) => scopes.clone(),
            None => scopes_for(configuration.as_ref().map(|c| c.capabilities.as_slice()).unwrap_or_default()),
        };
        Ok(Endpoints { authorize, token, scope })
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
        if !response.status().is_success() {
            return Err(DiscoveryError::Unreachable(format!("{url} answered {}", response.status())));
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

/// SMART v2 scopes when the plan offers them, else v1; always the context scopes.
pub fn scopes_for(capabilities: &[String]) -> String {
    let data = if capabilities.iter().any(|c| c == "permission-v2") { "patient/*.rs" } else { "patient/*.read" };
    format!("{CONTEXT_SCOPES} {data}")
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
