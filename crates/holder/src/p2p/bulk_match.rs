//! `POST [base]/Group/$bulk-member-match` (PDex 2.2 §pdex-146..154), asynchronous as Bulk Data
//! STU2 has it: the kick-off answers 202 with `Content-Location`; the status answers 202 with
//! `X-Progress` until the job is done, then 200 with a manifest whose NDJSON file holds the
//! `MatchedMembers` (always), `NonMatchedMembers` and `ConsentConstrainedMembers` Groups. Each
//! member is matched and consent-checked on its own, as `$member-match` does; one bad member
//! never fails the batch. Jobs live in the database: a job whose worker died is taken up again
//! by the next status request, here or on another instance.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_store::{BulkFile, BulkJob, MemberGroup, MemberMatch, Timestamp};
use baton_vocab::{AuditAction, BulkJobState};
use serde_json::{Value, json};

use super::SystemAccess;
use super::member_match::{Refusal, find};
use super::request;
use crate::Holder;
use crate::fhir::FhirError;
use crate::oauth::client_credentials::{BULK_MEMBER_MATCH_SCOPE, BULK_MEMBER_MATCH_SCOPE_STU21};

/// Members one kick-off may carry.
pub const MAX_MEMBERS: usize = 10_000;
/// The largest kick-off body: 10,000 members of a few kilobytes each.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// The job kind of a bulk match.
pub const KIND: &str = "bulk-member-match";
const RESULT_SYSTEM: &str = "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS";
const MATCH_PARAMETERS: &str = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters";

/// `POST /fhir/Group/$bulk-member-match`
pub async fn kick_off(State(holder): State<Holder>, access: SystemAccess, headers: HeaderMap, body: Bytes) -> Response {
    match start(&holder, &access, &headers, &body).await {
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

async fn start(holder: &Holder, access: &SystemAccess, headers: &HeaderMap, body: &[u8]) -> Result<String, FhirError> {
    if access.require(BULK_MEMBER_MATCH_SCOPE).is_err() {
        access.require(BULK_MEMBER_MATCH_SCOPE_STU21)?;
    }
    let asynchronous = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "respond-async"));
    if !asynchronous {
        return Err(FhirError::bad_parameter("$bulk-member-match is asynchronous: send Prefer: respond-async"));
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| FhirError::bad_parameter("the body is not JSON (a Parameters resource)"))?;
    let members = member_bundles(&body)?;
    if members.is_empty() {
        return Err(FhirError::bad_parameter("Parameters needs at least one MemberBundle"));
    }
    if members.len() > MAX_MEMBERS {
        return Err(FhirError::bad_parameter(format!("at most {MAX_MEMBERS} MemberBundles per request")));
    }
    let now = Timestamp::now();
    super::member_match::held_back(holder, access, now).await?;
    super::jobs::admit(holder, &access.client_id).await?;
    let id = uuid::Uuid::new_v4().to_string();
    holder
        .store
        .insert_bulk_job(&BulkJob {
            id: id.clone(),
            client_id: access.client_id.clone(),
            kind: KIND.to_owned(),
            state: BulkJobState::Queued,
            request_url: format!("{}/Group/$bulk-member-match", holder.urls.fhir_base),
            request: body.to_string(),
            total: members.len() as i64,
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

/// The `MemberBundle` parameters' parts.
/// (Borrowed: a batch of 10,000 members is not copied.)
fn member_bundles(body: &Value) -> Result<Vec<&[Value]>, FhirError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(FhirError::bad_parameter("the body must be a Parameters resource"));
    }
    let parameters = body
        .get("parameter")
        .and_then(Value::as_array)
        .ok_or_else(|| FhirError::bad_parameter("Parameters.parameter is missing"))?;
    let mut bundles = Vec::new();
    for parameter in parameters {
        if parameter.get("name").and_then(Value::as_str) != Some("MemberBundle") {
            return Err(FhirError::bad_parameter("every parameter must be a MemberBundle"));
        }
        let parts = parameter.get("part").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        bundles.push(parts);
    }
    Ok(bundles)
}

/// Matches every member of a claimed job, and completes it.
pub(super) async fn run(holder: &Holder, job: BulkJob) -> Result<(), FhirError> {
    let id = job.id.as_str();
    let now = Timestamp::now();
    let body: Value = serde_json::from_str(&job.request).map_err(FhirError::server)?;
    let today = now.to_datetime().date();
    let requester = super::member_match::requester_identifiers(holder, &job.client_id).await?;
    let mut groups: [Vec<(Value, Option<String>)>; 3] = [vec![], vec![], vec![]];
    for (done, parts) in member_bundles(&body)?.into_iter().enumerate() {
        let submitted = parts
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("MemberPatient"))
            .and_then(|p| p.get("resource"))
            .cloned()
            .unwrap_or_else(|| json!({"resourceType": "Patient"}));
        let outcome = match request::read_parts(parts) {
            Err(_) => Err(Refusal::NoMatch),
            Ok(request) => match find(holder, &requester, &request, today).await? {
                Ok((account, policy)) => {
                    holder
                        .store
                        .insert_member_match(&MemberMatch {
                            id: uuid::Uuid::new_v4().to_string(),
                            client_id: job.client_id.clone(),
                            account_id: account.id,
                            policy,
                            period_start: baton_vocab::day::start_millis(request.consent.start),
                            period_end: baton_vocab::day::start_millis(
                                request.consent.end.next_day().unwrap_or(request.consent.end),
                            ),
                            consent: request.consent.json.clone(),
                            matched_at: Timestamp::now().millis(),
                        })
                        .await?;
                    Ok(account.patient_id)
                }
                Err(refusal) => Err(refusal),
            },
        };
        match outcome {
            Ok(patient) => groups[0].push((submitted, patient)),
            Err(Refusal::Consent(_)) => groups[2].push((submitted, None)),
            Err(_) => groups[1].push((submitted, None)),
        }
        if done % 100 == 99 {
            holder.store.bulk_job_progress(id, done as i64 + 1, Timestamp::now()).await?;
        }
    }
    // A batch that is mostly guesses counts against the client like single failed matches (a
    // real plan's batch is mostly its new members, who were members here).
    let not_matched = groups[1].len();
    if not_matched * 2 > job.total as usize {
        let now = Timestamp::now();
        for _ in 0..not_matched.min(super::member_match::FAILURES_ALLOWED as usize) {
            holder.store.record_match_failure(&job.client_id, now, now.plus(time::Duration::days(-1))).await?;
        }
    }
    let codes = [("match", "Matched"), ("nomatch", "Not Matched"), ("consentconstraint", "Consent Constraint")];
    let mut member_groups = Vec::new();
    let mut lines = Vec::new();
    for (index, members) in groups.into_iter().enumerate() {
        // MatchedMembers is always there, even empty.
        if members.is_empty() && index > 0 {
            continue;
        }
        let (code, display) = codes[index];
        let group = group(holder, &job.client_id, code, display, members);
        lines.push(group.to_string());
        member_groups.push(MemberGroup {
            id: group["id"].as_str().unwrap_or_default().to_owned(),
            client_id: job.client_id.clone(),
            job_id: id.to_owned(),
            code: code.to_owned(),
            body: group.to_string(),
            created_at: Timestamp::now().millis(),
        });
    }
    let file = BulkFile {
        job_id: id.to_owned(),
        name: "Group.ndjson".to_owned(),
        part: 0,
        resource_type: "Group".to_owned(),
        count: lines.len() as i64,
        body: lines.join("\n") + "\n",
    };
    let counts: Vec<String> = member_groups.iter().map(|g| g.code.clone()).collect();
    if holder.store.complete_bulk_job(id, &[file], &member_groups, Timestamp::now()).await? {
        super::audit(
            holder,
            &job.client_id,
            None,
            AuditAction::MemberMatch,
            "Group/$bulk-member-match",
            &format!("job {id}: {} members, groups {}", job.total, counts.join(", ")),
        )
        .await?;
    }
    Ok(())
}

/// A result Group: each member a contained copy of the Patient as submitted (its `meta` left
/// out), with the match-parameters extension; a matched member names this plan's Patient.
fn group(holder: &Holder, client_id: &str, code: &str, display: &str, members: Vec<(Value, Option<String>)>) -> Value {
    let mut contained = Vec::new();
    let mut entries = Vec::new();
    for (index, (mut patient, matched)) in members.into_iter().enumerate() {
        let local = format!("{}", index + 1);
        if let Some(object) = patient.as_object_mut() {
            object.remove("meta");
            object.remove("text");
            object.insert("id".into(), json!(local));
        }
        contained.push(patient);
        let reference = matched.map_or_else(|| format!("#{local}"), |p| format!("Patient/{p}"));
        entries.push(json!({"entity": {
            "extension": [{"url": MATCH_PARAMETERS, "valueReference": {"reference": format!("#{local}")}}],
            "reference": reference,
        }}));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let coding = json!({"system": RESULT_SYSTEM, "code": code, "display": display});
    let mut group = json!({
        "resourceType": "Group",
        "id": id,
        "identifier": [{"system": format!("{}member-groups", holder.urls.public), "value": id}],
        // Searchable by the plan that asked (PDex §pdex-157): the result, for whom, since when.
        "characteristic": [{
            "code": {"coding": [coding]},
            "valueReference": {"identifier": {"system": format!("{}oauth-clients", holder.urls.public), "value": client_id}},
            "exclude": false,
            "period": {"start": Timestamp::now().to_fhir_instant()},
        }],
        "type": "person",
        "actual": true,
        "code": {"coding": [coding]},
        "managingEntity": {"display": holder.plan_name},
        "quantity": entries.len(),
    });
    if !contained.is_empty() {
        group["contained"] = json!(contained);
        group["member"] = json!(entries);
    }
    group
}
