//! Talking to the previous plan's FHIR API: bearer token, retries with exponential backoff and
//! jitter (`backon`) on server errors, timeouts, dropped connections and malformed pages,
//! `Retry-After` honoured on 429 and 503, a size cap on every response, and an audit record of
//! every request (the URL — which never carries a token —, status, duration, size).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use baton_store::{Timestamp, TransferRequest};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER};
use serde_json::Value;
use thiserror::Error;
use url::Url;

/// Retry and size limits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub max_response_bytes: usize,
    /// Attempts per request, the first included.
    pub max_attempts: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this pauses the whole transfer instead of waiting in place.
    pub max_retry_after: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: 64 * 1024 * 1024,
            max_attempts: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Why a request finally failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("the previous plan did not accept the access token (401)")]
    Unauthorized,
    #[error("the previous plan refused access (403): {0}")]
    Forbidden(String),
    #[error("the previous plan does not have it (404): {0}")]
    NotFound(String),
    /// 501: the plan does not implement what was asked (an operation it listed, say).
    #[error("the previous plan does not implement it (501): {0}")]
    NotImplemented(String),
    #[error("the previous plan refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the previous plan asked to wait {0:?} before trying again")]
    RetryLater(Duration),
    #[error("{0}")]
    Exhausted(String),
    #[error("the previous plan sent more than {0} bytes in one response")]
    TooLarge(usize),
    #[error("a link pointed outside the previous plan ({0}); it was not followed")]
    OtherOrigin(String),
}

/// One attempt's failure: retried or not.
#[derive(Debug)]
enum Attempt {
    Retry { reason: String, retry_after: Option<Duration> },
    Stop(FetchError),
}

impl Attempt {
    fn retryable(&self) -> bool {
        matches!(self, Attempt::Retry { .. })
    }
}

/// Requests made while fetching one page (committed with it).
#[derive(Debug, Default)]
pub struct Audit(Mutex<Vec<TransferRequest>>);

impl Audit {
    pub(crate) fn record(&self, request: TransferRequest) {
        if let Ok(mut log) = self.0.lock() {
            log.push(request);
        }
    }

    pub fn take(&self) -> Vec<TransferRequest> {
        self.0.lock().map(|mut log| std::mem::take(&mut *log)).unwrap_or_default()
    }
}

/// A client for one previous plan's FHIR base.
#[derive(Debug, Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    base: Url,
    config: ClientConfig,
}

impl FhirClient {
    pub fn new(http: reqwest::Client, fhir_base: &str, config: ClientConfig) -> Result<Self, url::ParseError> {
        let base = Url::parse(fhir_base.trim_end_matches('/'))?;
        Ok(Self { http, base, config })
    }

    /// The FHIR base, without a trailing slash.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `path` (relative to the base, e.g. `Condition?patient=1`) as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }

    /// Whether `url` is on the previous plan's server (same scheme, host and port): only then
    /// is the token sent there.
    pub fn same_origin(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| u.origin() == self.base.origin())
    }

    /// GETs JSON from the previous plan, retrying what is worth retrying.
    pub async fn get_json(&self, url: &str, token: Option<&str>, audit: &Audit) -> Result<Value, FetchError> {
        if !self.same_origin(url) {
            return Err(FetchError::OtherOrigin(url.to_owned()));
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter();
        let result = (|| self.attempt(url, token, audit))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Attempt::retryable)
            .adjust(|error, delay| match error {
                // Honour Retry-After, but never past the end of the retries.
                Attempt::Retry { retry_after: Some(after), .. } => delay.map(|d| d.max(*after)),
                _ => delay,
            })
            .notify(|error, delay| tracing::warn!(?error, ?delay, url, "retrying a request to the previous plan"))
            .await;
        match result {
            Ok(value) => Ok(value),
            Err(Attempt::Stop(error)) => Err(error),
            Err(Attempt::Retry { reason, .. }) => Err(FetchError::Exhausted(format!(
                "the previous plan kept failing after {} attempts: {reason}",
                self.config.max_attempts
            ))),
        }
    }

    async fn attempt(&self, url: &str, token: Option<&str>, audit: &Audit) -> Result<Value, Attempt> {
        let started = Instant::now();
        let mut request = self.http.get(url).header(ACCEPT, "application/fhir+json, application/json");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let log = |status: Option<u16>, bytes: usize, error: Option<String>| TransferRequest {
            at: Timestamp::now().millis(),
            method: "GET".into(),
            url: url.to_owned(),
            status: status.map(i32::from),
            duration_ms: started.elapsed().as_millis() as i64,
            bytes: bytes as i64,
            error,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = describe(&error);
                audit.record(log(None, 0, Some(reason.clone())));
                return Err(Attempt::Retry { reason, retry_after: None });
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers().get(RETRY_AFTER));
        let mut response = response;
        let mut body = Vec::new();
        let read = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.config.max_response_bytes {
                        break Err(Attempt::Stop(FetchError::TooLarge(self.config.max_response_bytes)));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break Ok(()),
                Err(error) => {
                    break Err(Attempt::Retry {
                        reason: format!("the response was cut off ({})", describe(&error)),
                        retry_after: None,
                    });
                }
            }
        };
        if let Err(error) = read {
            let reason = match &error {
                Attempt::Retry { reason, .. } => reason.clone(),
                Attempt::Stop(e) => e.to_string(),
            };
            audit.record(log(Some(status.as_u16()), body.len(), Some(reason)));
            return Err(error);
        }
        let outcome = if status.is_success() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(value) if value.is_object() => Ok(value),
                Ok(_) => Err(Attempt::Retry {
                    reason: "the response is JSON but not a FHIR resource".into(),
                    retry_after: None,
                }),
                Err(error) => Err(Attempt::Retry {
                    reason: format!("the response is not valid JSON ({error})"),
                    retry_after: None,
                }),
            }
        } else {
            let message = diagnostics(&body);
            Err(match status {
                StatusCode::UNAUTHORIZED => Attempt::Stop(FetchError::Unauthorized),
                StatusCode::FORBIDDEN => Attempt::Stop(FetchError::Forbidden(message)),
                StatusCode::NOT_FOUND | StatusCode::GONE => Attempt::Stop(FetchError::NotFound(message)),
                // Permanent, unlike other 5xx: asking again cannot help.
                StatusCode::NOT_IMPLEMENTED => Attempt::Stop(FetchError::NotImplemented(message)),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => match retry_after {
                    Some(after) if after > self.config.max_retry_after => Attempt::Stop(FetchError::RetryLater(after)),
                    _ => Attempt::Retry { reason: format!("{status}: {message}"), retry_after },
                },
                s if s.is_server_error() => {
                    Attempt::Retry { reason: format!("{status}: {message}"), retry_after: None }
                }
                s => Attempt::Stop(FetchError::Refused { status: s.as_u16(), message }),
            })
        };
        let error = match &outcome {
            Ok(_) => None,
            Err(Attempt::Retry { reason, .. }) => Some(reason.clone()),
            Err(Attempt::Stop(e)) => Some(e.to_string()),
        };
        audit.record(log(Some(status.as_u16()), body.len(), error));
        outcome
    }
}

/// A request error in plain words, without the URL (it is in the audit record already).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the request timed out".into();
    }
    if error.is_connect() {
        return "could not connect".into();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    format!("the connection failed: {text}")
}

/// The diagnostics of an OperationOutcome body, else a short excerpt.
fn diagnostics(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| baton_fhir::outcome::diagnostics(&v).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned())
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after(Some(&HeaderValue::from_static("7"))), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        let parsed = retry_after(Some(&HeaderValue::from_str(&in_a_minute).unwrap())).unwrap();
        assert!(parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(60), "{parsed:?}");
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn only_the_previous_plans_origin_gets_the_token() {
        let client =
            FhirClient::new(reqwest::Client::new(), "https://old.example/fhir/", ClientConfig::default()).unwrap();
        assert!(client.same_origin("https://old.example/fhir/Condition?page=2"));
        assert!(client.same_origin("https://old.example/other/path"));
        assert!(!client.same_origin("https://evil.example/fhir/Condition"));
        assert!(!client.same_origin("http://old.example/fhir/Condition"), "scheme matters");
        assert!(!client.same_origin("https://old.example:8443/fhir"), "port matters");
        assert_eq!(client.url("Condition?x=1"), "https://old.example/fhir/Condition?x=1");
    }
}
