//! The asynchronous requests' shared half (Bulk Data STU2): a job is claimed by one worker at
//! a time (taken over when its worker stops answering), polled, cancelled, and its files
//! served to the client that asked only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_store::{BulkJob, Timestamp};
use baton_vocab::BulkJobState;
use serde_json::{Value, json};

use super::SystemAccess;
use crate::Holder;
use crate::fhir::FhirError;

/// File parts read from the store at a time while a file is served.
const PARTS_PER_READ: u32 = 16;

/// How long output is kept after a job completes.
pub const RETENTION_HOURS: i64 = 24;
/// A running job not heard of for this long lost its worker.
const STALE_SECONDS: i64 = 60;

/// The wait a poll of a request under way is told (`Retry-After`, seconds)…
const RETRY_AFTER_SECONDS: u64 = 1;
/// …and the least it must wait, or be told 429.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// When each request under way was last polled, by job id.
pub type Polls = std::sync::Mutex<HashMap<String, Instant>>;

/// Jobs one client may have queued or running at once.
pub const JOBS_PER_CLIENT: u64 = 4;

/// Before a new job: forgets expired output, and refuses (429) a client with too many jobs
/// under way.
pub(super) async fn admit(holder: &Holder, client_id: &str) -> Result<(), FhirError> {
    holder.store.purge_expired_bulk_files(Timestamp::now()).await?;
    if holder.store.active_bulk_jobs(client_id).await? >= JOBS_PER_CLIENT {
        return Err(FhirError::new(
            StatusCode::TOO_MANY_REQUESTS,
            baton_fhir::outcome::IssueType::Throttled,
            format!(
                "at most {JOBS_PER_CLIENT} requests may be under way at once; wait for one to finish, or cancel one"
            ),
        ));
    }
    Ok(())
}

/// Runs the job in the background if no live worker has it.
pub(super) fn spawn_run(holder: &Holder, id: &str) {
    let (holder, id) = (holder.clone(), id.to_owned());
    tokio::spawn(async move {
        if let Err(error) = run(&holder, &id).await {
            tracing::error!(job = %id, error = %error.message, "bulk job failed");
            let _ = holder.store.fail_bulk_job(&id, "the server failed to finish the job", Timestamp::now()).await;
        }
    });
}

async fn run(holder: &Holder, id: &str) -> Result<(), FhirError> {
    let now = Timestamp::now();
    if !holder.store.claim_bulk_job(id, now, now.plus(time::Duration::seconds(-STALE_SECONDS))).await? {
        return Ok(());
    }
    let Some(job) = holder.store.bulk_job(id).await? else { return Ok(()) };
    match job.kind.as_str() {
        super::bulk_match::KIND => super::bulk_match::run(holder, job).await,
        super::export::KIND => super::export::run(holder, job).await,
        other => Err(FhirError::server(format!("a job of unknown kind {other}"))),
    }
}

pub(super) fn status_url(holder: &Holder, id: &str) -> String {
    format!("{}/bulk-status/{id}", holder.urls.fhir_base)
}

/// `GET /fhir/bulk-status/{id}`
pub async fn status(State(holder): State<Holder>, access: SystemAccess, Path(id): Path<String>) -> Response {
    let result = async {
        let job = owned(&holder, &access, &id).await?;
        match job.state {
            BulkJobState::Completed => Ok(manifest(&holder, &job).await?),
            BulkJobState::Failed => Err(FhirError::server(job.error.unwrap_or_default())),
            BulkJobState::Cancelled => Err(FhirError::not_found("that request was cancelled")),
            BulkJobState::Queued | BulkJobState::Running => {
                too_soon(&holder, &id)?;
                let stale = Timestamp::now().plus(time::Duration::seconds(-STALE_SECONDS)).millis();
                if job.state == BulkJobState::Queued || job.updated_at < stale {
                    spawn_run(&holder, &id);
                }
                let mut response = StatusCode::ACCEPTED.into_response();
                let headers = response.headers_mut();
                if let Ok(progress) = HeaderValue::from_str(&format!("{} of {} members", job.done, job.total)) {
                    headers.insert("x-progress", progress);
                }
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                Ok(response)
            }
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Bulk Data STU2: a client polling a request under way sooner than it was told gets 429 (with
/// the same `Retry-After`). Polls are remembered per instance; finished requests are forgotten.
fn too_soon(holder: &Holder, id: &str) -> Result<(), FhirError> {
    let now = Instant::now();
    let mut polls = holder.polls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    polls.retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
    let last = polls.insert(id.to_owned(), now);
    match last {
        Some(at) if now.duration_since(at) < MIN_POLL_INTERVAL => {
            polls.insert(id.to_owned(), at);
            Err(FhirError::new(
                StatusCode::TOO_MANY_REQUESTS,
                baton_fhir::outcome::IssueType::Throttled,
                format!("polled too soon: wait {RETRY_AFTER_SECONDS} seconds between polls"),
            )
            .retry_after(RETRY_AFTER_SECONDS))
        }
        _ => Ok(()),
    }
}

/// `DELETE /fhir/bulk-status/{id}`: cancels the job and forgets its output.
pub async fn cancel(State(holder): State<Holder>, access: SystemAccess, Path(id): Path<String>) -> Response {
    let result = async {
        owned(&holder, &access, &id).await?;
        holder.store.cancel_bulk_job(&id, Timestamp::now()).await?;
        Ok::<_, FhirError>(StatusCode::ACCEPTED.into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /fhir/bulk-files/{id}/{name}`: an output file, to the client that asked only.
pub async fn file(
    State(holder): State<Holder>,
    access: SystemAccess,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let result = async {
        let job = owned(&holder, &access, &id).await?;
        if job.state != BulkJobState::Completed || job.expires_at < Timestamp::now().millis() {
            return Err(FhirError::not_found("that file is not available"));
        }
        if !holder.store.bulk_files(&id).await?.iter().any(|f| f.name == name) {
            return Err(FhirError::not_found("no such file"));
        }
        // Streamed part by part: a file is never whole in memory.
        let store = holder.store.clone();
        let parts = futures_util::stream::unfold(Some(None), move |after: Option<Option<i64>>| {
            let (store, id, name) = (store.clone(), id.clone(), name.clone());
            async move {
                let after = after?;
                match store.bulk_file_parts(&id, &name, after, PARTS_PER_READ).await {
                    Ok(parts) if parts.is_empty() => None,
                    Ok(parts) => {
                        let last = parts.last().map(|p| p.part);
                        let body: String = parts.into_iter().map(|p| p.body).collect();
                        Some((Ok::<_, std::io::Error>(body), Some(last)))
                    }
                    Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
                }
            }
        });
        let mut response = axum::body::Body::from_stream(parts).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+ndjson"));
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The job, when it is this client's; 404 otherwise (another client's job does not exist for it).
async fn owned(holder: &Holder, access: &SystemAccess, id: &str) -> Result<BulkJob, FhirError> {
    match holder.store.bulk_job(id).await? {
        Some(job) if job.client_id == access.client_id => Ok(job),
        _ => Err(FhirError::not_found("no such request")),
    }
}

async fn manifest(holder: &Holder, job: &BulkJob) -> Result<Response, FhirError> {
    if job.expires_at < Timestamp::now().millis() {
        return Err(FhirError::gone("the output of that request has expired"));
    }
    let files = holder.store.bulk_files(&job.id).await?;
    let entry = |f: &baton_store::BulkFile| json!({"type": f.resource_type, "url": format!("{}/bulk-files/{}/{}", holder.urls.fhir_base, job.id, f.name), "count": f.count});
    let (errors, outputs): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.resource_type == "OperationOutcome");
    let output: Vec<Value> = outputs.into_iter().map(entry).collect();
    let error: Vec<Value> = errors.into_iter().map(entry).collect();
    let body = json!({
        "transactionTime": Timestamp::from_millis(job.completed_at.unwrap_or(job.updated_at)).to_fhir_instant(),
        "request": job.request_url,
        "requiresAccessToken": true,
        "output": output,
        "error": error,
    });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
