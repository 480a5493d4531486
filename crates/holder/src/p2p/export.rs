//! `POST [base]/Group/{id}/$davinci-data-export` (PDex 2.2 §pdex-139..172): the members of a
//! Group a bulk match made for this client, each only while their Consent holds at run time,
//! as their Consent allows (`#regular`: nothing sensitive), claims without remittances and
//! cost-sharing, as NDJSON per resource type with one transmitter Provenance for the export.
//! Asynchronous like `$bulk-member-match` ([`super::jobs`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_fhir::exchange::{EXCHANGE_TYPES, is_compartment_type, is_exchange_type};
use baton_fhir::smart::{Context, Scope};
use baton_store::{BulkFile, BulkJob, ResourceQuery, StoredResource, Timestamp};
use baton_vocab::{AuditAction, BulkJobState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SystemAccess;
use super::type_filter::TypeFilter;
use crate::Holder;
use crate::fhir::FhirError;

/// The job kind of an export.
pub const KIND: &str = "davinci-data-export";
/// The one export type this operation serves.
pub const PAYER_TO_PAYER: &str = "hl7.fhir.us.davinci-pdex#payertopayer";
/// Resources read per page from the store.
const PAGE: u32 = 1000;

/// What an export asks for, as kept with its job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ExportRequest {
    group: String,
    /// Patient ids of the Group's matched members.
    patients: Vec<String>,
    since: Option<i64>,
    until: Option<i64>,
    types: Vec<String>,
    /// `_typeFilter`, by type.
    #[serde(default)]
    type_filters: BTreeMap<String, TypeFilter>,
}

/// `POST /fhir/Group/{id}/$davinci-data-export`
pub async fn kick_off(
    State(holder): State<Holder>,
    access: SystemAccess,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&holder, &access, &group, query.as_deref(), &headers, &body).await {
        Ok(id) => {
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Ok(location) = HeaderValue::from_str(&super::jobs::status_url(&holder, &id)) {
                response.headers_mut().insert(header::CONTENT_LOCATION, location);
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn start(
    holder: &Holder,
    access: &SystemAccess,
    group_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, FhirError> {
    let reads = access.scopes.iter().any(|s| matches!(s, Scope::Resource(r) if r.context == Context::System && r.read));
    if !reads {
        return Err(FhirError::forbidden("$davinci-data-export needs a system read scope (system/*.rs)"));
    }
    let asynchronous = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "respond-async"));
    if !asynchronous {
        return Err(FhirError::bad_parameter("$davinci-data-export is asynchronous: send Prefer: respond-async"));
    }
    let group = holder
        .store
        .member_group(&access.client_id, group_id)
        .await?
        .ok_or_else(|| FhirError::not_found("no Group of this client has that id"))?;
    if group.code != "match" {
        return Err(FhirError::unprocessable("only the MatchedMembers Group can be exported"));
    }
    let mut request = ExportRequest { group: group.id.clone(), ..Default::default() };
    let mut named: Vec<String> = Vec::new();
    for (name, value) in parameters(query, body)? {
        match name.as_str() {
            "exportType" if value == PAYER_TO_PAYER => {}
            "exportType" => {
                return Err(FhirError::bad_parameter(format!("exportType must be {PAYER_TO_PAYER}, not {value:?}")));
            }
            "_since" | "_until" => {
                let at = Timestamp::parse_rfc3339(&value)
                    .ok_or_else(|| FhirError::bad_parameter(format!("{name} must be an instant, not {value:?}")))?;
                if name == "_since" { request.since = Some(at.millis()) } else { request.until = Some(at.millis()) }
            }
            "_type" => {
                for resource_type in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !is_exchange_type(resource_type) {
                        return Err(FhirError::bad_parameter(format!(
                            "_type {resource_type} is not a type this plan exports"
                        )));
                    }
                    request.types.push(resource_type.to_owned());
                }
            }
            "_typeFilter" => {
                for filter in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    super::type_filter::add(&mut request.type_filters, filter)?;
                }
            }
            "patient" => {
                for reference in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    named.push(reference.trim_start_matches("Patient/").to_owned());
                }
            }
            "_outputFormat"
                if matches!(value.as_str(), "application/fhir+ndjson" | "application/ndjson" | "ndjson") => {}
            other => return Err(FhirError::bad_parameter(format!("$davinci-data-export does not take {other}"))),
        }
    }
    if let Some(outside) =
        request.type_filters.keys().find(|t| !request.types.is_empty() && !request.types.contains(t))
    {
        return Err(FhirError::bad_parameter(format!("_typeFilter names {outside}, which _type leaves out")));
    }
    let group_body: Value = serde_json::from_str(&group.body).map_err(FhirError::server)?;
    request.patients = group_body["member"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["entity"]["reference"].as_str()?.strip_prefix("Patient/").map(str::to_owned))
        .collect();
    // `patient`: some of the Group's members only.
    if let Some(outside) = named.iter().find(|p| !request.patients.contains(p)) {
        return Err(FhirError::bad_parameter(format!("Patient/{outside} is not a member of that Group")));
    }
    if !named.is_empty() {
        request.patients.retain(|p| named.contains(p));
    }
    super::jobs::admit(holder, &access.client_id).await?;
    let now = Timestamp::now();
    let id = uuid::Uuid::new_v4().to_string();
    holder
        .store
        .insert_bulk_job(&BulkJob {
            id: id.clone(),
            client_id: access.client_id.clone(),
            kind: KIND.to_owned(),
            state: BulkJobState::Queued,
            request_url: format!("{}/Group/{group_id}/$davinci-data-export", holder.urls.fhir_base),
            request: serde_json::to_string(&request).map_err(FhirError::server)?,
            total: request.patients.len() as i64,
            done: 0,
            error: None,
            created_at: now.millis(),
            updated_at: now.millis(),
            completed_at: None,
            expires_at: now.plus(time::Duration::hours(super::jobs::RETENTION_HOURS)).millis(),
        })
        .await?;
    super::jobs::spawn_run(holder, &id);
    Ok(id)
}

/// The kick-off's parameters: the query string's, then a `Parameters` body's (`value[x]` as text).
fn parameters(query: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, FhirError> {
    let mut found: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        let body: Value = serde_json::from_slice(body).map_err(|_| FhirError::bad_parameter("the body is not JSON"))?;
        if body["resourceType"] != "Parameters" {
            return Err(FhirError::bad_parameter("the body must be a Parameters resource"));
        }
        for parameter in body["parameter"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            let value = parameter
                .as_object()
                .and_then(|p| p.iter().find(|(k, _)| k.starts_with("value")))
                .and_then(|(_, v)| v.as_str().or_else(|| v.get("reference").and_then(Value::as_str)))
                .ok_or_else(|| FhirError::bad_parameter(format!("parameter {name:?} needs a value")))?;
            found.push((name, value.to_owned()));
        }
    }
    Ok(found)
}

/// Exports every member whose Consent still holds, and completes the job. Each member's output
/// is written with the job's progress in one transaction, so a job taken over after its worker
/// died goes on from the next member, and every resource is in the files exactly once.
pub(super) async fn run(holder: &Holder, job: BulkJob) -> Result<(), FhirError> {
    let request: ExportRequest = serde_json::from_str(&job.request).map_err(FhirError::server)?;
    let first = usize::try_from(job.done).unwrap_or(0);
    holder.store.discard_bulk_parts_from(&job.id, job.done).await?;
    for (index, patient) in request.patients.iter().enumerate().skip(first) {
        let part = index as i64;
        let mut files: BTreeMap<String, (i64, String)> = BTreeMap::new();
        let mut add = |resource_type: &str, line: &str| {
            let (count, body) = files.entry(resource_type.to_owned()).or_default();
            *count += 1;
            body.push_str(line);
            body.push('\n');
        };
        match holder.store.current_match(&job.client_id, patient, Timestamp::now()).await? {
            None => {
                let outcome = baton_fhir::outcome::error(
                    baton_fhir::outcome::IssueType::Forbidden,
                    &format!("Patient/{patient}: the member's Consent no longer holds; nothing was exported"),
                );
                add(ERRORS, &outcome.to_string());
            }
            Some(matched) => {
                for resource in
                    member_resources(holder, &request, patient, !matched.policy.includes_sensitive()).await?
                {
                    let body = without_amounts(&resource.resource_type, resource.body);
                    add(&resource.resource_type, &body);
                }
            }
        }
        let parts: Vec<BulkFile> = files
            .into_iter()
            .map(|(resource_type, (count, body))| BulkFile {
                job_id: job.id.clone(),
                name: format!("{resource_type}.ndjson"),
                part,
                resource_type,
                count,
                body,
            })
            .collect();
        if !holder.store.append_bulk_parts(&job.id, &parts, part + 1, Timestamp::now()).await? {
            return Ok(()); // cancelled, or another worker has it now
        }
    }
    // One transmitter Provenance for what this export carries (PDex §1.7): every member but
    // those left out (their OperationOutcome's part is their place in the Group).
    let left_out: Vec<i64> = holder
        .store
        .bulk_file_parts(&job.id, &format!("{ERRORS}.ndjson"), None, u32::MAX)
        .await?
        .into_iter()
        .map(|p| p.part)
        .collect();
    let exported: Vec<Value> = request
        .patients
        .iter()
        .enumerate()
        .filter(|(index, _)| !left_out.contains(&(*index as i64)))
        .map(|(_, patient)| json!({"reference": format!("Patient/{patient}")}))
        .collect();
    let now = Timestamp::now();
    let mut last = Vec::new();
    if !exported.is_empty() {
        let provenance = json!({
            "resourceType": "Provenance",
            "id": uuid::Uuid::new_v4().to_string(),
            "target": exported,
            "recorded": now.to_fhir_instant(),
            "agent": [{
                "type": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/ProvenanceAgentType", "code": "transmitter"}]},
                "who": {"display": holder.plan_name},
            }],
        });
        last.push(BulkFile {
            job_id: job.id.clone(),
            name: "Provenance.ndjson".to_owned(),
            part: request.patients.len() as i64,
            resource_type: "Provenance".to_owned(),
            count: 1,
            body: format!("{provenance}\n"),
        });
    }
    if holder.store.complete_bulk_job(&job.id, &last, &[], now).await? {
        let files = holder.store.bulk_files(&job.id).await?;
        let summary: Vec<String> = files.iter().map(|f| format!("{} {}", f.count, f.resource_type)).collect();
        let detail = format!("job {}: group {}, {}", job.id, request.group, summary.join(", "));
        super::audit(holder, &job.client_id, None, AuditAction::MemberRead, "Group/$davinci-data-export", &detail)
            .await?;
    }
    Ok(())
}

/// The resource type of the file of members left out.
const ERRORS: &str = "OperationOutcome";

/// What the export carries of one member: their compartment, then the directory entries their
/// records name, each read in pages under one snapshot.
async fn member_resources(
    holder: &Holder,
    request: &ExportRequest,
    patient: &str,
    exclude_sensitive: bool,
) -> Result<Vec<StoredResource>, FhirError> {
    let types: Vec<String> = if request.types.is_empty() {
        EXCHANGE_TYPES.iter().map(|t| (*t).to_owned()).collect()
    } else {
        request.types.clone()
    };
    // The types without a `_typeFilter` in one query per kind; each filtered type on its own.
    let (filtered, plain): (Vec<String>, Vec<String>) =
        types.into_iter().partition(|t| request.type_filters.contains_key(t));
    let (compartment, directory): (Vec<String>, Vec<String>) = plain.into_iter().partition(|t| is_compartment_type(t));
    let mut searches = vec![(compartment, None), (directory, None)];
    searches.extend(filtered.into_iter().map(|t| (vec![t.clone()], request.type_filters.get(&t).copied())));
    let mut found = Vec::new();
    for (resource_types, filter) in searches {
        let Some(first) = resource_types.first() else { continue };
        let in_compartment = is_compartment_type(first);
        let filter = filter.unwrap_or_default();
        // `None` is below every `Some`: the later of two bounds, or the one there is.
        let latest = |a: Option<i64>, b: Option<i64>| a.max(b);
        let earliest = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut query = ResourceQuery {
            resource_types,
            exclude_sensitive,
            last_updated_from: latest(request.since, filter.updated_from).map(Timestamp::from_millis),
            last_updated_before: earliest(request.until, filter.updated_to.map(|t| t + 1)).map(Timestamp::from_millis),
            date_from: filter.date_from.map(Timestamp::from_millis),
            date_to: filter.date_to.map(Timestamp::from_millis),
            limit: PAGE,
            ..Default::default()
        };
        if in_compartment {
            query.patient_id = Some(patient.to_owned());
        } else {
            query.no_compartment = true;
            query.referenced_by_patient = Some(patient.to_owned());
        }
        loop {
            let page = holder.store.search_resources(&query).await?;
            found.extend(page.resources.into_iter().filter(|r| r.deleted_at.is_none()));
            match page.next_after_seq {
                Some(after) => {
                    query.after_seq = Some(after);
                    query.snapshot_seq = Some(page.snapshot_seq);
                }
                None => break,
            }
        }
    }
    Ok(found)
}

fn without_amounts(resource_type: &str, body: String) -> String {
    if resource_type != "ExplanationOfBenefit" {
        return body;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(mut claim)) => {
            baton_fhir::financial::strip_financial(&mut claim);
            Value::Object(claim).to_string()
        }
        _ => body,
    }
}
