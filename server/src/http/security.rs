//! Security headers on every response, and cross-origin request protection (CSRF).
//!
//! CSRF: a state-changing request (anything but GET/HEAD/OPTIONS) from a browser must come
//! from this site. Browsers say where a request comes from in `Sec-Fetch-Site` (and in
//! `Origin`); a request from another site is refused with 403 before any handler runs —
//! forms, server functions and every later route alike. Requests without either header do
//! not come from a browser and carry no ambient cookies to abuse. This is the check of Go's
//! `http.CrossOriginProtection` and OWASP's "verify origin with standard headers", on top of
//! `SameSite=Lax` session cookies.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Where requests may come from.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// This site's origin, e.g. `https://baton.example.org`.
    pub origin: String,
    /// Path prefixes called by other servers, not browsers (token endpoints): not checked.
    pub exempt_prefixes: Vec<String>,
}

pub async fn cross_origin_protection(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if is_safe(request.method()) || policy.exempt_prefixes.iter().any(|p| request.uri().path().starts_with(p.as_str()))
    {
        return next.run(request).await;
    }
    match verdict(request.headers(), &policy.origin) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(reason, path = request.uri().path(), "cross-origin request refused");
            (StatusCode::FORBIDDEN, "Cross-origin request refused.\n").into_response()
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn verdict(headers: &HeaderMap, origin: &str) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err("sec-fetch-site is not same-origin"),
        };
    }
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(value) if value.as_bytes() == origin.as_bytes() => Ok(()),
        Some(value) => {
            // Behind a proxy the configured public origin is authoritative; without one,
            // accept an Origin matching the Host the request was sent to.
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let origin_host = value.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, h)| h);
            match (host, origin_host) {
                (Some(host), Some(origin_host)) if host == origin_host => Ok(()),
                _ => Err("origin does not match"),
            }
        }
    }
}

/// Headers every response carries (set only when the handler did not set its own).
#[derive(Clone)]
pub struct HeaderPolicy {
    pub hsts: bool,
    /// Origins the pages' forms may send the member on to (the consent form's answer redirects
    /// to the previous plan's authorization page, and browsers hold redirects to `form-action`).
    pub form_targets: Arc<dyn Fn() -> std::collections::BTreeSet<String> + Send + Sync>,
}

/// This response's script nonce, put into the request's extensions before the handler runs:
/// the page's hydration scripts carry it (see `startup`), and its policy names it.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

impl CspNonce {
    fn new() -> Self {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The policy for everything that is not an HTML page of this site.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of this site's HTML pages: scripts only from this site or with the response's
/// nonce (the hydration bootstrap); WebAssembly may compile; forms may lead to `form_targets`.
pub fn page_policy(nonce: &str, form_targets: &std::collections::BTreeSet<String>) -> String {
    let targets: String = form_targets.iter().map(|o| format!(" {o}")).collect();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'{targets}; frame-ancestors 'none'"
    )
}

// The page's policy is set here, for every HTML response, rather than by the page while it
// renders: set there (through Leptos' response options), it was now and then missing from
// the response, leaving the default policy, which blocks the hydration scripts and the consent
// form's redirect.
pub async fn security_headers(State(policy): State<Arc<HeaderPolicy>>, mut request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/pkg/") || request.uri().path().starts_with("/favicon");
    let nonce = CspNonce::new();
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let is_html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    if is_html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let page = page_policy(&nonce.0, &(policy.form_targets)());
        if let Ok(value) = HeaderValue::from_str(&page) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    let defaults: [(header::HeaderName, &str); 6] = [
        (header::CONTENT_SECURITY_POLICY, DEFAULT_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (header::HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()"),
    ];
    for (name, value) in defaults {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    // Member data must not linger in shared or browser caches; assets may, revalidated.
    let cache = if is_asset { "no-cache" } else { "no-store" };
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static(cache));
    if policy.hsts {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    const ORIGIN: &str = "http://127.0.0.1:3000";

    #[test]
    fn same_origin_browser_requests_pass() {
        assert!(verdict(&headers(&[("sec-fetch-site", "same-origin")]), ORIGIN).is_ok());
        assert!(verdict(&headers(&[("sec-fetch-site", "none")]), ORIGIN).is_ok());
        assert!(verdict(&headers(&[("origin", "http://127.0.0.1:3000")]), ORIGIN).is_ok());
        assert!(verdict(&headers(&[("origin", "http://localhost:3000"), ("host", "localhost:3000")]), ORIGIN).is_ok());
    }

    #[test]
    fn cross_site_browser_requests_are_refused() {
        assert!(verdict(&headers(&[("sec-fetch-site", "cross-site")]), ORIGIN).is_err());
        assert!(verdict(&headers(&[("sec-fetch-site", "same-site")]), ORIGIN).is_err());
        assert!(verdict(&headers(&[("origin", "https://evil.example"), ("host", "127.0.0.1:3000")]), ORIGIN).is_err());
        assert!(
            verdict(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "http://127.0.0.1:3000")]), ORIGIN)
                .is_err(),
            "Sec-Fetch-Site wins over a matching Origin"
        );
        assert!(verdict(&headers(&[("origin", "null")]), ORIGIN).is_err(), "opaque origins are refused");
    }

    #[test]
    fn non_browser_requests_pass() {
        assert!(verdict(&HeaderMap::new(), ORIGIN).is_ok());
    }
}
