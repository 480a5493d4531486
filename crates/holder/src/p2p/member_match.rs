//! `POST [base]/Patient/$member-match` (HRex 1.2; PDex 2.2 §pdex-197..207).
//!
//! Deterministic: a member id or subscriber id from the old card **and** the family name and
//! birth date must all agree with one member (a lone coverage id never matches). Exactly one
//! member → 200 with `MemberIdentifier` (`hrex-temp#UMB`, the same value every time) and
//! `MemberId`; none, several, or a Consent Baton cannot honour → 422 with an OperationOutcome
//! and no id. The Consent is stored with the match. Failed matches are counted per client:
//! past [`FAILURES_ALLOWED`] in [`FAILURE_WINDOW_MINUTES`] the client gets 429 (mm-7). Every
//! match and refusal is in the audit log.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_fhir::outcome::IssueType;
use baton_store::{Account, AccountId, MemberMatch, Timestamp};
use baton_vocab::{AuditAction, ConsentPolicy, GivenNameRule};
use serde_json::{Value, json};
use time::Date;
use unicode_normalization::UnicodeNormalization;

use super::SystemAccess;
use super::request::{self, MatchRequest};
use crate::Holder;
use crate::fhir::FhirError;
use crate::oauth::client_credentials::MEMBER_MATCH_SCOPE;

/// Failed matches a client may make in [`FAILURE_WINDOW_MINUTES`] before it is held back.
pub const FAILURES_ALLOWED: u64 = 20;
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// The identifier type HRex 1.2 gives `MemberIdentifier`.
const UMB_SYSTEM: &str = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp";

/// Why a member could not be matched (each a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoMatch,
    SeveralMatches,
    /// Matched, but the Consent cannot be honoured: why.
    Consent(String),
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::NoMatch => "no member matches the demographics and coverage given".to_owned(),
            Refusal::SeveralMatches => "more than one member matches; no member is returned".to_owned(),
            Refusal::Consent(why) => format!("the member's Consent cannot be honoured: {why}"),
        }
    }
}

/// The handler.
pub async fn member_match(State(holder): State<Holder>, access: SystemAccess, body: Bytes) -> Response {
    match run(&holder, &access, &body).await {
        Ok(parameters) => fhir_json(StatusCode::OK, parameters),
        Err(error) => error.into_response(),
    }
}

async fn run(holder: &Holder, access: &SystemAccess, body: &[u8]) -> Result<Value, FhirError> {
    access.require(MEMBER_MATCH_SCOPE)?;
    let now = Timestamp::now();
    held_back(holder, access, now).await?;
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| FhirError::bad_parameter("the body is not JSON (a Parameters resource)"))?;
    let request = request::read(&body).map_err(|invalid| FhirError::bad_parameter(invalid.0))?;
    let requester = requester_identifiers(holder, &access.client_id).await?;
    match find(holder, &requester, &request, now.to_datetime().date()).await? {
        Ok((account, policy)) => {
            let umb = holder.store.member_umb(account.id, &uuid::Uuid::new_v4().to_string()).await?;
            holder
                .store
                .insert_member_match(&MemberMatch {
                    id: uuid::Uuid::new_v4().to_string(),
                    client_id: access.client_id.clone(),
                    account_id: account.id,
                    policy,
                    period_start: day_start(request.consent.start),
                    period_end: day_start(request.consent.end.next_day().unwrap_or(request.consent.end)),
                    consent: request.consent.json.clone(),
                    matched_at: now.millis(),
                })
                .await?;
            audit(holder, access, Some(account.id), AuditAction::MemberMatch, &format!("policy {policy}")).await?;
            let mut parameters = vec![json!({"name": "MemberIdentifier", "valueIdentifier": {
                "type": {"coding": [{"system": UMB_SYSTEM, "code": "UMB"}]},
                "system": format!("{}member-identifiers", holder.urls.public),
                "value": umb,
                "assigner": {"display": holder.plan_name},
            }})];
            if let Some(patient) = &account.patient_id {
                parameters
                    .push(json!({"name": "MemberId", "valueReference": {"reference": format!("Patient/{patient}")}}));
            }
            Ok(json!({"resourceType": "Parameters", "parameter": parameters}))
        }
        Err(refusal) => {
            // A Consent Baton cannot honour is no guess at a member; no match and several are.
            if !matches!(refusal, Refusal::Consent(_)) {
                let forget = now.plus(time::Duration::days(-1));
                holder.store.record_match_failure(&access.client_id, now, forget).await?;
            }
            audit(holder, access, None, AuditAction::MemberMatchRefused, &refusal.message()).await?;
            Err(FhirError::unprocessable(refusal.message()))
        }
    }
}

/// The identifiers a client's plan is registered with (`system|value`).
pub(super) async fn requester_identifiers(holder: &Holder, client_id: &str) -> Result<Vec<String>, FhirError> {
    let client = holder.store.oauth_client(client_id).await?;
    Ok(client.map(|c| c.identifiers().map(str::to_owned).collect()).unwrap_or_default())
}

/// mm-7: a client with too many failed matches lately is held back (429), from `$member-match`
/// and `$bulk-member-match` alike; the refusal is audited.
pub(super) async fn held_back(holder: &Holder, access: &SystemAccess, now: Timestamp) -> Result<(), FhirError> {
    let since = now.plus(time::Duration::minutes(-FAILURE_WINDOW_MINUTES));
    if holder.store.match_failures_since(&access.client_id, since).await? < FAILURES_ALLOWED {
        return Ok(());
    }
    audit(holder, access, None, AuditAction::MemberMatchRefused, "held back: too many failed matches").await?;
    Err(FhirError::new(
        StatusCode::TOO_MANY_REQUESTS,
        IssueType::Throttled,
        format!("too many failed matches; try again in {FAILURE_WINDOW_MINUTES} minutes"),
    )
    .retry_after(FAILURE_WINDOW_MINUTES as u64 * 60))
}

/// The one member `request` describes, and the policy of their Consent when Baton can honour it
/// today; or why not.
///
/// HRex mm-1: the Consent's source must include this plan and its recipient the plan asking,
/// each checked when the identifiers are known (`[holder] identifiers`, the client's
/// `identifiers`).
pub async fn find(
    holder: &Holder,
    requester: &[String],
    request: &MatchRequest,
    today: Date,
) -> Result<Result<(Account, ConsentPolicy), Refusal>, FhirError> {
    let mut matched: Vec<Account> = Vec::new();
    for id in &request.member_ids {
        let Some(account) = holder.store.account_by_member_id(id).await? else { continue };
        if matched.iter().any(|m| m.id == account.id) || !same_person(holder, &account, request).await? {
            continue;
        }
        matched.push(account);
    }
    let account = match matched.len() {
        0 => return Ok(Err(Refusal::NoMatch)),
        1 => matched.remove(0),
        _ => return Ok(Err(Refusal::SeveralMatches)),
    };
    let consent = &request.consent;
    let refusal = |why: &str| Ok(Err(Refusal::Consent(why.to_owned())));
    // Baton tells sensitive records apart (labels and the classifier), so it honours #regular
    // as well as #sensitive.
    let Some(policy) = consent.policy else { return refusal("its policy is neither #regular nor #sensitive") };
    if !consent.active {
        refusal("it is not active")
    } else if consent.end < today {
        refusal("its period has ended")
    } else if consent.start > today {
        refusal("its period has not started")
    } else if !names_one_of(&consent.sources, &holder.settings.identifiers) {
        refusal("it does not name this plan as the source of the data (provision.actor with role performer)")
    } else if !names_one_of(&consent.recipients, requester) {
        refusal("it does not name the requesting plan as the recipient (provision.actor with role IRCP)")
    } else {
        Ok(Ok((account, policy)))
    }
}

/// Whether a Consent's actors include one of a plan's identifiers; true when the plan's are not
/// known (nothing to check against).
fn names_one_of(actors: &[String], plan: &[String]) -> bool {
    plan.is_empty() || actors.iter().any(|actor| plan.iter().any(|ours| ours == actor))
}

/// Whether the member's own Patient record has the family name and birth date asked for
/// (names compared without case or accents).
async fn same_person(holder: &Holder, account: &Account, request: &MatchRequest) -> Result<bool, FhirError> {
    let Some(patient_id) = &account.patient_id else { return Ok(false) };
    let Some(patient) = holder.store.read_resource("Patient", patient_id).await? else { return Ok(false) };
    let Ok(patient) = serde_json::from_str::<Value>(&patient.body) else { return Ok(false) };
    let birth_date = patient.get("birthDate").and_then(Value::as_str).and_then(baton_vocab::day::parse);
    if birth_date != Some(request.birth_date) {
        return Ok(false);
    }
    let wanted = folded(&request.family);
    let rule = holder.settings.match_given_name;
    let names = patient.get("name").and_then(Value::as_array).into_iter().flatten();
    Ok(names.filter(|n| n.get("family").and_then(Value::as_str).is_some_and(|f| folded(f) == wanted)).any(|name| {
        let given = name.get("given").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
        given_names_agree(rule, given, &request.given)
    }))
}

/// Whether a record's given names and those asked for agree, as `[holder] match_given_name` says.
fn given_names_agree<'a>(rule: GivenNameRule, ours: impl Iterator<Item = &'a str>, asked: &[String]) -> bool {
    let ours: Vec<&str> = ours.collect();
    match rule {
        GivenNameRule::Ignore => true,
        GivenNameRule::Folded => ours.iter().any(|o| asked.iter().any(|a| folded(o) == folded(a))),
        GivenNameRule::Exact => ours.iter().any(|o| asked.iter().any(|a| o.trim() == a.trim())),
    }
}

/// A name without case, accents or surrounding space.
fn folded(name: &str) -> String {
    name.trim()
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn day_start(date: Date) -> i64 {
    baton_vocab::day::start_millis(date)
}

async fn audit(
    holder: &Holder,
    access: &SystemAccess,
    member: Option<AccountId>,
    action: AuditAction,
    detail: &str,
) -> Result<(), FhirError> {
    super::audit(holder, &access.client_id, member, action, "Patient/$member-match", detail).await
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_case_or_accents() {
        assert_eq!(folded(" López "), folded("LOPEZ"));
        assert_ne!(folded("Lopez"), folded("Lopes"));
    }

    #[test]
    fn given_names_are_compared_as_configured() {
        let asked = ["JOSE".to_owned()];
        let ours = || ["José", "Luis"].into_iter();
        assert!(given_names_agree(GivenNameRule::Folded, ours(), &asked));
        assert!(!given_names_agree(GivenNameRule::Exact, ours(), &asked));
        assert!(given_names_agree(GivenNameRule::Exact, ours(), &["Luis".to_owned()]));
        assert!(!given_names_agree(GivenNameRule::Folded, ours(), &["Pedro".to_owned()]));
        assert!(given_names_agree(GivenNameRule::Ignore, ours(), &["Pedro".to_owned()]));
    }
}
