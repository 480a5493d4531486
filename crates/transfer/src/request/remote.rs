//! Talking to the previous plan's asynchronous operations (Bulk Data STU2 pattern): kick-off,
//! status polls, file reads and cancellation, with what each answer means for the request.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;

/// Why a call to the previous plan did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// It refused (a 4xx other than 429): asking again the same way will not help.
    Refused(String),
    /// It could not be reached or failed on its side (5xx, network): asking later may help.
    Unavailable(String),
    /// It asked this plan to wait (429), for this long when it said.
    Busy(Option<Duration>),
    /// It does not offer the operation (404, 405 or 501 to a kick-off).
    NotOffered(String),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Refused(why) | RemoteError::Unavailable(why) | RemoteError::NotOffered(why) => {
                f.write_str(why)
            }
            RemoteError::Busy(_) => f.write_str("the previous plan asked to wait (429)"),
        }
    }
}

/// What a status poll said.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// Still working: wait `retry_after` when it said; `progress` is its `X-Progress`.
    Pending { retry_after: Option<Duration>, progress: Option<String> },
    /// Done: the completion manifest (or, from an STU 2.1 server, the Parameters itself).
    Done(Value),
}

/// `Retry-After`, in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// What an OperationOutcome body says, in one line (or the start of whatever the body is).
pub fn said(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let said: Vec<&str> = json["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|issue| issue["diagnostics"].as_str().or_else(|| issue["details"]["text"].as_str()))
        .collect();
    if said.is_empty() { body.chars().take(200).collect() } else { said.join("; ") }
}

pub(super) fn failed(
    what: &str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> RemoteError {
    let why = format!("{what} answered {status}: {}", said(body));
    match status.as_u16() {
        429 => RemoteError::Busy(retry_after(headers)),
        400..=499 => RemoteError::Refused(why),
        _ => RemoteError::Unavailable(why),
    }
}

pub(super) fn unreachable(what: &str, error: &reqwest::Error) -> RemoteError {
    RemoteError::Unavailable(format!("{what} could not be reached: {}", error.without_url_ref()))
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(url.as_str(), "…"),
            None => text,
        }
    }
}

/// Starts an asynchronous operation: `POST` with `Prefer: respond-async`; its status URL.
pub async fn kick_off(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    what: &str,
) -> Result<String, RemoteError> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .header(ACCEPT, "application/fhir+json")
        .header(CONTENT_TYPE, "application/fhir+json")
        .header("Prefer", "respond-async")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(what, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    if status == reqwest::StatusCode::ACCEPTED {
        let location = headers.get(reqwest::header::CONTENT_LOCATION).and_then(|v| v.to_str().ok());
        return location
            .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
            .map(str::to_owned)
            .ok_or_else(|| {
                RemoteError::Refused(format!("{what} answered 202 without a status URL (Content-Location)"))
            });
    }
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Err(RemoteError::Refused(format!("{what} answered {status}, not 202: it did not run asynchronously")));
    }
    if matches!(status.as_u16(), 404 | 405 | 501) {
        return Err(RemoteError::NotOffered(format!("{what} answered {status}: {}", said(&body))));
    }
    Err(failed(what, status, &headers, &body))
}

/// Asks where an operation stands.
pub async fn poll(http: &reqwest::Client, status_url: &str, token: &str) -> Result<Polled, RemoteError> {
    let what = "the status URL";
    let response = http
        .get(status_url)
        .bearer_auth(token)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(what, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    if status == reqwest::StatusCode::ACCEPTED {
        let progress = headers.get("x-progress").and_then(|v| v.to_str().ok()).map(|p| p.chars().take(100).collect());
        return Ok(Polled::Pending { retry_after: retry_after(&headers), progress });
    }
    let body = response.text().await.map_err(|e| unreachable(what, &e))?;
    if status == reqwest::StatusCode::OK {
        let json: Value = serde_json::from_str(&body)
            .map_err(|_| RemoteError::Unavailable(format!("{what} answered 200 with something that is not JSON")))?;
        return Ok(Polled::Done(json));
    }
    Err(failed(what, status, &headers, &body))
}

/// Tells the previous plan this plan no longer wants the operation's output (best effort);
/// what it answered, in words.
pub async fn cancel(http: &reqwest::Client, status_url: &str, token: &str) -> String {
    match http.delete(status_url).bearer_auth(token).send().await {
        Ok(response) => format!("it answered {}", response.status()),
        Err(error) => format!("it could not be reached ({})", error.without_url_ref()),
    }
}

/// Opens a file of the output; the token goes only where `token` is given.
pub async fn open_file(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<reqwest::Response, RemoteError> {
    let what = "an export file";
    let mut request = http.get(url).header(ACCEPT, "application/fhir+ndjson");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| unreachable(what, &e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Err(failed(what, status, &headers, &body))
}

/// How long to wait before the next poll: what the plan said (never less), else doubling from
/// `min` with each poll up to `max`, with a tenth either way of jitter so that batches started
/// together do not poll together.
pub fn next_wait(said: Option<Duration>, polls: u32, min: Duration, max: Duration) -> Duration {
    if let Some(said) = said {
        return said.max(min).min(Duration::from_secs(24 * 3600));
    }
    let doubled = min.saturating_mul(2u32.saturating_pow(polls.min(20))).min(max);
    let jitter = 0.9 + rand::random::<f64>() * 0.2;
    doubled.mul_f64(jitter).max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_a_plan_s_retry_after_is_never_cut_short() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(60));
        assert!(next_wait(None, 0, min, max) >= min);
        assert!(next_wait(None, 3, min, max) >= Duration::from_secs_f64(16.0 * 0.9));
        assert!(next_wait(None, 30, min, max) <= Duration::from_secs_f64(66.0));
        assert_eq!(next_wait(Some(Duration::from_secs(120)), 0, min, max), Duration::from_secs(120));
        assert_eq!(next_wait(Some(Duration::ZERO), 0, min, max), min);
    }

    #[test]
    fn an_outcome_is_told_in_its_own_words() {
        let body = r#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"Group is not yours"}]}"#;
        assert_eq!(said(body), "Group is not yours");
        assert_eq!(said("plain text"), "plain text");
    }
}
