//! OAuth 2.0 error responses (RFC 6749 §5.2) from the token, introspection and revocation
//! endpoints.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    pub status: StatusCode,
    /// Answer with `WWW-Authenticate: Basic` (the client tried Basic authentication).
    basic: bool,
    /// Seconds to wait (`Retry-After`), when held back.
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(error: &'static str, status: StatusCode, description: impl Into<String>) -> Self {
        Self { error, description: description.into(), status, basic: false, retry_after: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", StatusCode::BAD_REQUEST, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", StatusCode::UNAUTHORIZED, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", StatusCode::BAD_REQUEST, description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new("unauthorized_client", StatusCode::BAD_REQUEST, description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", StatusCode::BAD_REQUEST, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new("invalid_scope", StatusCode::BAD_REQUEST, description)
    }

    /// Something failed on our side; the details go to the log, not to the client.
    pub fn server(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "authorization server error");
        Self::new("server_error", StatusCode::INTERNAL_SERVER_ERROR, "the authorization server failed")
    }

    /// Too many failed client authentications lately: 429, and how long to wait.
    pub fn held_back(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs().max(1);
        let mut error = Self::new(
            "invalid_client",
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed client authentications; try again in {seconds} seconds"),
        );
        error.retry_after = Some(seconds);
        error
    }

    pub fn basic(mut self) -> Self {
        self.basic = true;
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({"error": self.error, "error_description": self.description}))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.basic {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"baton\""));
        }
        response
    }
}
