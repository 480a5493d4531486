//! What an admin pins for a payer loaded from a brands file: its SMART authorization and token
//! endpoints (for plans whose discovery is missing or wrong) and the scopes to ask for instead
//! of those chosen from its capabilities. Checked here before they are stored; once stored they
//! are used exactly as a configured payer's `authorize_url`, `token_url` and `scopes`.

use std::net::IpAddr;

use baton_fhir::smart::{Context, Scope};
use baton_store::PinnedEndpoints;
use thiserror::Error;
use url::{Host, Url};

/// Which endpoint a URL is for (in the words of the SMART configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Authorization,
    Token,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Endpoint::Authorization => "authorization_endpoint",
            Endpoint::Token => "token_endpoint",
        })
    }
}

/// Why a pinned value is refused, in words staff can act on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PinnedError {
    #[error("the {0} must be an absolute URL such as https://auth.plan.example/oauth/token")]
    NotAbsolute(Endpoint),
    #[error("the {0} must use https (http is allowed only for this machine: 127.0.0.1, [::1] or localhost)")]
    NotHttps(Endpoint),
    #[error("the {0} must not carry a #fragment or a user name or password")]
    Extra(Endpoint),
    #[error("the {0} is longer than 2000 characters")]
    TooLong(Endpoint),
    #[error("{0:?} is not a SMART scope (scopes are separated by spaces, e.g. launch/patient openid patient/*.read)")]
    UnknownScope(String),
    #[error("{0:?} asks to change data; this plan only reads (use .read, or r and s)")]
    WriteScope(String),
    #[error("{0:?} is not a patient-level scope; a member-authorized exchange asks for patient/… scopes")]
    NotPatientScope(String),
    #[error(
        "the scopes ask for no patient data: add a patient-level read scope such as patient/*.read or patient/*.rs"
    )]
    NoPatientData,
    #[error("the scopes are longer than 1000 characters")]
    ScopesTooLong,
}

impl PinnedError {
    /// The staff form's field the error is about: `authorize_url`, `token_url` or `scopes`.
    pub fn field(&self) -> &'static str {
        match self {
            PinnedError::NotAbsolute(which)
            | PinnedError::NotHttps(which)
            | PinnedError::Extra(which)
            | PinnedError::TooLong(which) => match which {
                Endpoint::Authorization => "authorize_url",
                Endpoint::Token => "token_url",
            },
            PinnedError::UnknownScope(_)
            | PinnedError::WriteScope(_)
            | PinnedError::NotPatientScope(_)
            | PinnedError::NoPatientData
            | PinnedError::ScopesTooLong => "scopes",
        }
    }
}

/// An endpoint URL, or `None` for an empty field: absolute, https — http only for a loopback
/// host (the demo's plans and tests run on 127.0.0.1) — without fragment or credentials.
pub fn endpoint(which: Endpoint, text: &str) -> Result<Option<Url>, PinnedError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 2000 {
        return Err(PinnedError::TooLong(which));
    }
    let url = Url::parse(text).map_err(|_| PinnedError::NotAbsolute(which))?;
    let Some(host) = url.host() else { return Err(PinnedError::NotAbsolute(which)) };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        _ => return Err(PinnedError::NotHttps(which)),
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(PinnedError::Extra(which));
    }
    Ok(Some(url))
}

/// Whether Baton may talk to `url`: https, or plain http to this machine (the demo's plans and
/// the tests run on 127.0.0.1). Every endpoint of a plan — configured, from a brands file or
/// discovered — is held to it: health data and tokens never cross a network in the clear.
pub fn is_secure(url: &Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => is_loopback(&host),
        _ => false,
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// A scope override, or `None` for an empty field: space-separated SMART scopes — the launch
/// and identity scopes (`launch/patient`, `openid`, `fhirUser`, `offline_access`,
/// `online_access`) and patient-level read scopes (v1 `.read`, v2 `r`/`s`), at least one of
/// the latter. Returned with single spaces, duplicates dropped.
pub fn scopes(text: &str) -> Result<Option<String>, PinnedError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 1000 {
        return Err(PinnedError::ScopesTooLong);
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut patient_data = false;
    for token in text.split_whitespace() {
        match Scope::parse(token) {
            Scope::LaunchPatient | Scope::OpenId | Scope::FhirUser | Scope::OfflineAccess | Scope::OnlineAccess => {}
            Scope::Resource(scope) if scope.write => return Err(PinnedError::WriteScope(token.to_owned())),
            Scope::Resource(scope) if scope.context != Context::Patient => {
                return Err(PinnedError::NotPatientScope(token.to_owned()));
            }
            Scope::Resource(_) => patient_data = true,
            Scope::Other(_) => return Err(PinnedError::UnknownScope(token.to_owned())),
        }
        if !kept.contains(&token) {
            kept.push(token);
        }
    }
    if !patient_data {
        return Err(PinnedError::NoPatientData);
    }
    Ok(Some(kept.join(" ")))
}

/// The three fields of the staff form, checked together.
pub fn parse(authorize_url: &str, token_url: &str, scope_override: &str) -> Result<PinnedEndpoints, PinnedError> {
    Ok(PinnedEndpoints {
        authorize_url: endpoint(Endpoint::Authorization, authorize_url)?.map(String::from),
        token_url: endpoint(Endpoint::Token, token_url)?.map(String::from),
        scopes: scopes(scope_override)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_this_machine_is_secure() {
        let secure = |u: &str| is_secure(&Url::parse(u).unwrap());
        assert!(secure("https://fhir.plan.example/r4"));
        assert!(secure("http://127.0.0.1:3001/fhir") && secure("http://localhost/fhir") && secure("http://[::1]/"));
        assert!(!secure("http://fhir.plan.example/r4"));
        assert!(!secure("http://10.0.0.5/fhir"));
        assert!(!secure("ftp://fhir.plan.example/r4"));
    }

    #[test]
    fn endpoints_are_absolute_https_urls_or_loopback_http() {
        let ok = |text: &str| endpoint(Endpoint::Token, text).map(|u| u.map(String::from));
        assert_eq!(ok(""), Ok(None));
        assert_eq!(ok("  "), Ok(None));
        assert_eq!(ok(" https://auth.plan.example/token "), Ok(Some("https://auth.plan.example/token".into())));
        assert_eq!(ok("http://127.0.0.1:3001/oauth/token"), Ok(Some("http://127.0.0.1:3001/oauth/token".into())));
        assert!(ok("http://localhost:8080/token").is_ok());
        assert!(ok("http://[::1]:8080/token").is_ok());
        assert_eq!(ok("http://auth.plan.example/token"), Err(PinnedError::NotHttps(Endpoint::Token)));
        assert_eq!(ok("http://10.0.0.1/token"), Err(PinnedError::NotHttps(Endpoint::Token)));
        assert_eq!(ok("ftp://auth.plan.example/token"), Err(PinnedError::NotHttps(Endpoint::Token)));
        assert_eq!(ok("/oauth/token"), Err(PinnedError::NotAbsolute(Endpoint::Token)));
        assert_eq!(ok("auth.plan.example/token"), Err(PinnedError::NotAbsolute(Endpoint::Token)));
        assert_eq!(ok("javascript:alert(1)"), Err(PinnedError::NotAbsolute(Endpoint::Token)));
        assert_eq!(ok("https://auth.plan.example/token#x"), Err(PinnedError::Extra(Endpoint::Token)));
        assert_eq!(ok("https://me:pw@auth.plan.example/token"), Err(PinnedError::Extra(Endpoint::Token)));
        assert_eq!(
            endpoint(Endpoint::Authorization, "http://plan.example/authorize").unwrap_err().to_string(),
            "the authorization_endpoint must use https (http is allowed only for this machine: 127.0.0.1, [::1] or localhost)"
        );
    }

    #[test]
    fn scopes_are_smart_scopes_asking_for_patient_data() {
        assert_eq!(scopes(""), Ok(None));
        assert_eq!(
            scopes("  launch/patient   openid fhirUser offline_access patient/*.rs patient/*.rs "),
            Ok(Some("launch/patient openid fhirUser offline_access patient/*.rs".into()))
        );
        assert!(scopes("patient/ExplanationOfBenefit.read patient/Coverage.read").is_ok());
        assert_eq!(scopes("openid, patient/*.read"), Err(PinnedError::UnknownScope("openid,".into())));
        assert_eq!(scopes("patient/*.read; DROP TABLE"), Err(PinnedError::UnknownScope("patient/*.read;".into())));
        assert_eq!(scopes("patient/*.sr"), Err(PinnedError::UnknownScope("patient/*.sr".into())));
        assert_eq!(scopes("patient/*.write"), Err(PinnedError::WriteScope("patient/*.write".into())));
        assert_eq!(scopes("patient/*.cruds"), Err(PinnedError::WriteScope("patient/*.cruds".into())));
        assert_eq!(scopes("system/*.read"), Err(PinnedError::NotPatientScope("system/*.read".into())));
        assert_eq!(scopes("launch/patient openid offline_access"), Err(PinnedError::NoPatientData));
        assert_eq!(scopes(&"patient/*.read ".repeat(100)), Err(PinnedError::ScopesTooLong));
        assert!(
            scopes("openid, patient/*.read").unwrap_err().to_string().contains("is not a SMART scope"),
            "the message says what is wrong"
        );
    }

    #[test]
    fn the_form_is_checked_field_by_field() {
        let pinned = parse("https://a.example/authorize", "", "patient/*.read").unwrap();
        assert_eq!(pinned.authorize_url.as_deref(), Some("https://a.example/authorize"));
        assert_eq!(pinned.token_url, None);
        assert_eq!(pinned.scopes.as_deref(), Some("patient/*.read"));
        assert_eq!(parse("", "", ""), Ok(PinnedEndpoints::default()));
        assert_eq!(parse("", "http://a.example/token", ""), Err(PinnedError::NotHttps(Endpoint::Token)));
        let field = |a: &str, t: &str, s: &str| parse(a, t, s).unwrap_err().field();
        assert_eq!(field("/authorize", "", ""), "authorize_url");
        assert_eq!(field("", "https://x.example/t#f", ""), "token_url");
        assert_eq!(field("", "", "openid"), "scopes");
    }
}
