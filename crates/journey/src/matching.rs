//! Bringing a member's records without their sign-in at the old plan: this plan's system asks
//! the old plan to match the member (`Patient/$member-match`, HRex 1.2) with the member's
//! Consent, under SMART Backend Services; a match becomes a link like a member's authorization,
//! and the transfer engine pulls what the match allows (renewing the system token as needed).

use baton_store::{AccountId, NewAuditEvent, Timestamp};
use baton_transfer::backend::{BackendCredentials, TokenError, system_token};
use baton_transfer::request::single::{Answer, classify, diagnostics, find_patient, read_match};
use baton_vocab::{AuditAction, LinkAccess, MatchResult};
use serde_json::{Value, json};

use crate::authorization::Granted;
use crate::{Connected, Journey, JourneyError, Payer};

/// What the member typed: their id on the old plan's card and their name as it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldCard {
    pub member_id: String,
    pub given: String,
    pub family: String,
}

impl OldCard {
    /// The card, checked: each part present, at most 100 characters, no control characters.
    pub fn parse(member_id: &str, given: &str, family: &str) -> Result<Self, JourneyError> {
        let field = |value: &str, name: &'static str| {
            let value = value.trim();
            if value.is_empty() || value.chars().count() > 100 || value.chars().any(char::is_control) {
                Err(JourneyError::Invalid(name))
            } else {
                Ok(value.to_owned())
            }
        };
        Ok(Self {
            member_id: field(member_id, "member_id")?,
            given: field(given, "given")?,
            family: field(family, "family")?,
        })
    }
}

/// What asking the old plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// It matched the member: the records are on their way.
    Connected(Connected),
    /// It answered, without a member: why, in its words.
    Refused { result: MatchResult, said: String },
}

impl Journey {
    /// Asks `payer` to match `member` with the Consent they give now; on a match, records it and
    /// queues the transfer. Every answer is written to the audit log.
    pub async fn bring_by_match(
        &self,
        member: AccountId,
        payer_id: &str,
        card: &OldCard,
        include_sensitive: bool,
        now: Timestamp,
    ) -> Result<Matched, JourneyError> {
        let payer = self.offered(payer_id)?;
        let backend =
            payer.credentials.backend.clone().ok_or_else(|| JourneyError::NoPayerToPayer(payer.id.clone()))?;
        let consent = self.give_consent(member, &payer, include_sensitive, false, now.millis(), now).await?;
        let account =
            self.store.account_by_id(member).await?.ok_or_else(|| JourneyError::Failed("no such member".into()))?;
        let body = request(&account, card, &consent.resource);
        let token_url = self.system_token_url(&payer, &backend).await?;
        let token = system_token(&self.http, &backend, &token_url, now.millis()).await.map_err(|e| match e {
            TokenError::Refused(why) => JourneyError::PayerRefused(why),
            TokenError::Failed(why) => JourneyError::Failed(why),
        })?;
        let fhir_base = payer.fhir_base.as_str().trim_end_matches('/').to_owned();
        let answer = self.post_match(&fhir_base, &token.access_token, &body).await?;
        let matched = match answer {
            Answer::Matched { patient, identifier } => {
                let patient = match patient {
                    Some(patient) => patient,
                    None => find_patient(&self.http, &fhir_base, &token.access_token, &identifier)
                        .await
                        .map_err(|e| JourneyError::Failed(e.to_string()))?
                        .ok_or_else(|| {
                            JourneyError::Failed("the old plan matched the member but names no Patient for them".into())
                        })?,
                };
                let granted = Granted {
                    access_token: token.access_token,
                    expires_in_ms: token.expires_at.map(|at| at - now.millis()),
                    refresh_token: None,
                    id_token: None,
                    scope: token.scope,
                    patient: Some(patient),
                    sensitive: None,
                };
                let connected =
                    self.connect(member, &payer, consent, LinkAccess::PayerToPayer, &fhir_base, granted, now).await?;
                Matched::Connected(connected)
            }
            Answer::Refused { result, said } => Matched::Refused { result, said },
        };
        let (result, detail) = match &matched {
            Matched::Connected(c) => (MatchResult::Matched, format!("transfer {}", c.transfer_id)),
            Matched::Refused { result, said } => (*result, said.clone()),
        };
        self.store
            .record_audit(&NewAuditEvent {
                at: now,
                actor_account: Some(member),
                actor: "member".into(),
                action: AuditAction::MatchRequested.to_string(),
                member_account: Some(member),
                subject: format!("payer {}", payer.id),
                detail: format!("{result}: {detail}"),
            })
            .await?;
        Ok(matched)
    }

    /// Where this plan's system gets tokens at `payer`: pinned for it, or the token endpoint
    /// of the SMART configuration at the plan's FHIR base.
    async fn system_token_url(&self, payer: &Payer, backend: &BackendCredentials) -> Result<String, JourneyError> {
        if let Some(url) = &backend.token_url {
            return Ok(url.clone());
        }
        let configuration = self.discovery.configuration(&payer.fhir_base).await?;
        configuration.token_endpoint.ok_or(JourneyError::Discovery(crate::DiscoveryError::Missing("token_endpoint")))
    }

    async fn post_match(&self, fhir_base: &str, token: &str, body: &Value) -> Result<Answer, JourneyError> {
        let response = self
            .http
            .post(format!("{fhir_base}/Patient/$member-match"))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| JourneyError::Failed(format!("the old plan could not be reached: {}", e.without_url())))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status.as_u16() {
            200 => read_match(&json).map_err(JourneyError::Failed),
            422 => {
                let said = diagnostics(&json);
                Ok(Answer::Refused { result: classify(&said), said })
            }
            401 | 403 => {
                Err(JourneyError::PayerRefused(format!("$member-match answered {status}: {}", diagnostics(&json))))
            }
            _ => Err(JourneyError::Failed(format!("$member-match answered {status}: {}", diagnostics(&json)))),
        }
    }
}

/// The `$member-match` input (HRex `hrex-parameters-member-match-in`): the member as this plan
/// knows them with the name from the old card, the old card as `CoverageToMatch`, the Consent —
/// all referring to the MemberPatient locally (mm-6).
fn request(account: &baton_store::Account, card: &OldCard, consent: &Value) -> Value {
    const PATIENT: &str = "Patient/1";
    let mut patient = json!({
        "resourceType": "Patient",
        "id": "1",
        "name": [{"use": "official", "family": card.family, "given": [card.given]}],
        // This plan does not know it; HRex wants gender or birth sex.
        "gender": "unknown",
    });
    if let Some(birth_date) = account.birth_date {
        patient["birthDate"] = json!(baton_vocab::day::format(birth_date));
    }
    let coverage = json!({
        "resourceType": "Coverage",
        "id": "1",
        "status": "active",
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
            "value": card.member_id,
        }],
        "subscriberId": card.member_id,
        "beneficiary": {"reference": PATIENT},
        "payor": [{"display": "previous health plan"}],
    });
    let mut consent = consent.clone();
    consent["patient"] = json!({"reference": PATIENT});
    consent["performer"] = json!([{"reference": PATIENT}]);
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "MemberPatient", "resource": patient},
        {"name": "CoverageToMatch", "resource": coverage},
        {"name": "Consent", "resource": consent},
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_needs_every_part() {
        assert!(OldCard::parse(" RB-1 ", "Maria", "Garcia").is_ok_and(|c| c.member_id == "RB-1"));
        assert!(matches!(OldCard::parse("", "Maria", "Garcia"), Err(JourneyError::Invalid("member_id"))));
        assert!(matches!(OldCard::parse("RB-1", "Maria", "\u{7}"), Err(JourneyError::Invalid("family"))));
    }
}
