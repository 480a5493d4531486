//! Another plan's system reading a member it matched: `Patient/{id}/$everything`, a read of
//! the Patient, or a search naming the patient — only while a match of that client holds a
//! Consent in its period, and only what the Consent allows (`#regular`: nothing sensitive).
//! Every such read is in the audit log.

use axum::http::request::Parts;
use baton_fhir::smart::Scopes;
use baton_store::{NewAuditEvent, SystemToken, Timestamp};
use baton_vocab::AuditAction;

use crate::Holder;
use crate::fhir::FhirError;
use crate::fhir::access::Access;

/// What a system token may see on this request.
pub async fn access(parts: &Parts, holder: &Holder, token: SystemToken, now: Timestamp) -> Result<Access, FhirError> {
    let Some(patient) = patient_named(parts) else {
        return Err(FhirError::forbidden(
            "a plan's system reads one matched member at a time: Patient/{id}/$everything, Patient/{id}, or a search \
             with patient={id}",
        ));
    };
    let Some(matched) = holder.store.current_match(&token.client_id, &patient, now).await? else {
        return Err(FhirError::forbidden("no $member-match of this client holds a Consent for that member today"));
    };
    holder
        .store
        .record_audit(&NewAuditEvent {
            at: now,
            actor_account: None,
            actor: format!("plan system \"{}\"", token.client_id),
            action: AuditAction::MemberRead.to_string(),
            member_account: Some(matched.account_id),
            subject: format!("{} {}", parts.method, parts.uri.path()),
            detail: format!("consent {} ({})", matched.id, matched.policy),
        })
        .await?;
    Ok(Access {
        patient_id: Some(patient),
        // The system scopes, as the same reads of one patient.
        scopes: Scopes::parse(&token.scope.replace("system/", "patient/")),
        include_sensitive: matched.policy.includes_sensitive(),
        client_id: token.client_id,
        base: holder.urls.fhir_base.clone(),
        without_amounts: true,
    })
}

/// The patient a request names: `/fhir/Patient/{id}[/$everything]`, or `patient=` in a search.
fn patient_named(parts: &Parts) -> Option<String> {
    let path = parts.uri.path().strip_prefix("/fhir/")?;
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["Patient", id] | ["Patient", id, "$everything"] => Some(decode(id)),
        [_resource_type] => parts.uri.query().and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "patient")
                .map(|(_, value)| value.trim_start_matches("Patient/").to_owned())
        }),
        _ => None,
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}
