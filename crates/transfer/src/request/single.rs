//! When a previous plan offers no `$bulk-member-match` (it answers 404, 405 or 501), each member
//! of the request is asked for with `Patient/$member-match` (HRex) instead, one at a time, the
//! place saved after each answer. Each matched member's records are then pulled as the
//! member-mediated match does — a `PayerToPayer` link, `$everything` or per-type searches with
//! this plan's system token — since there is no export to read.
//!
//! The answer's reading is shared with the member-mediated match (`baton_journey`): a 200 names
//! the member (`MemberIdentifier`, and `MemberId` when the plan gives it, else this plan searches
//! `Patient?identifier=`); HRex answers every refusal 422, told apart by its words.

use baton_vocab::{MatchResult, RequestState};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use super::remote::{self, RemoteError};
use super::{Outcome, RequestEnd, Run, Step, members};

/// What a plan answered to `$member-match`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// It found the member: their identifier there, and their Patient id when it said.
    Matched { patient: Option<String>, identifier: Value },
    /// It found no one, several, or could not honour the Consent: which, and its words.
    Refused { result: MatchResult, said: String },
}

/// A 200: `MemberIdentifier` (required) and `MemberId` (optional, a Patient reference).
pub fn read_match(parameters: &Value) -> Result<Answer, String> {
    let parameter =
        |name: &str| parameters["parameter"].as_array().into_iter().flatten().find(|p| p["name"] == name).cloned();
    let identifier = parameter("MemberIdentifier")
        .map(|p| p["valueIdentifier"].clone())
        .filter(Value::is_object)
        .ok_or_else(|| "the old plan's match answer has no MemberIdentifier".to_owned())?;
    let patient = parameter("MemberId")
        .and_then(|p| p["valueReference"]["reference"].as_str().map(str::to_owned))
        .and_then(|r| r.rsplit('/').next().map(str::to_owned))
        .filter(|id| !id.is_empty());
    Ok(Answer::Matched { patient, identifier })
}

/// What an OperationOutcome says, in one line.
pub fn diagnostics(outcome: &Value) -> String {
    let said: Vec<&str> = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|issue| issue["diagnostics"].as_str().or_else(|| issue["details"]["text"].as_str()))
        .collect();
    if said.is_empty() { "no reason given".to_owned() } else { said.join("; ") }
}

/// HRex answers every refusal 422: which one, from its words.
pub fn classify(said: &str) -> MatchResult {
    let said = said.to_lowercase();
    if said.contains("consent") {
        MatchResult::ConsentRefused
    } else if ["more than one", "several", "multiple"].iter().any(|w| said.contains(w)) {
        MatchResult::SeveralMatches
    } else {
        MatchResult::NoMatch
    }
}

/// `POST Patient/$member-match` with one member's parts.
async fn member_match(
    http: &reqwest::Client,
    fhir_base: &str,
    token: &str,
    body: &Value,
) -> Result<Answer, RemoteError> {
    let what = "$member-match";
    let response = http
        .post(format!("{fhir_base}/Patient/$member-match"))
        .bearer_auth(token)
        .header(ACCEPT, "application/fhir+json")
        .header(CONTENT_TYPE, "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| remote::unreachable(what, &e))?;
    let (status, headers, text) = read(response).await;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status.as_u16() {
        200 => read_match(&json).map_err(RemoteError::Refused),
        422 => {
            let said = diagnostics(&json);
            Ok(Answer::Refused { result: classify(&said), said })
        }
        _ => Err(remote::failed(what, status, &headers, &text)),
    }
}

/// An answer's status, headers and body (an unreadable body is empty).
async fn read(response: reqwest::Response) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

/// The Patient a `MemberIdentifier` names, when the answer had no `MemberId` (`Patient?identifier=`).
pub async fn find_patient(
    http: &reqwest::Client,
    fhir_base: &str,
    token: &str,
    identifier: &Value,
) -> Result<Option<String>, RemoteError> {
    let system = identifier["system"].as_str().unwrap_or_default();
    let value = identifier["value"].as_str().unwrap_or_default();
    let what = "the Patient search";
    let response = http
        .get(format!("{fhir_base}/Patient"))
        .query(&[("identifier", format!("{system}|{value}"))])
        .bearer_auth(token)
        .header(ACCEPT, "application/fhir+json")
        .send()
        .await
        .map_err(|e| remote::unreachable(what, &e))?;
    let (status, headers, text) = read(response).await;
    if !status.is_success() {
        return Err(remote::failed(what, status, &headers, &text));
    }
    let bundle: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(bundle["entry"][0]["resource"]["id"].as_str().map(str::to_owned))
}

/// A member's answer kept in the checkpoint: (coverage, result, their Patient there).
pub(super) type Answered = (String, MatchResult, Option<String>);

impl Run<'_> {
    /// Asks for the members one at a time from the `next`th; then records every answer and
    /// goes on to filing the matched members' records.
    pub(super) async fn match_each(&mut self, next: usize, mut answered: Vec<Answered>) -> Outcome {
        let failed = |e: baton_store::StoreError| RequestEnd::Failed(e.to_string());
        let store = &self.engine.store;
        let members = store.request_members(&self.request.id).await.map_err(failed)?;
        for (index, member) in members.iter().enumerate().skip(next) {
            let coverage = store.previous_coverage(&member.coverage_id).await.map_err(failed)?;
            let bundle = match coverage {
                Some(coverage) => members::member_bundle(self.engine, &coverage).await,
                None => Ok(None),
            };
            let answer = match bundle {
                Ok(Some(bundle)) => {
                    let body = json!({"resourceType": "Parameters", "parameter": bundle["part"]});
                    let token = self.token().await?;
                    let answer = member_match(&self.engine.http, &self.fhir_base, &token, &body)
                        .await
                        .map_err(|e| self.back_off(&e))?;
                    Some(self.answered(&member.coverage_id, answer, &token).await?)
                }
                Ok(None) => {
                    self.place.note(format!("a member's permission ended before the request ({})", member.coverage_id));
                    None
                }
                Err(why) => {
                    self.place.note(format!("member {} could not be sent: {why}", member.coverage_id));
                    None
                }
            };
            answered.extend(answer);
            self.place.step = Step::Single { next: index + 1, answered: answered.clone() };
            self.note = Some(format!("asked the previous plan about {} of {} members", index + 1, members.len()));
            self.save(RequestState::Matching).await?;
        }
        let since = time::OffsetDateTime::from_unix_timestamp(self.request.created_at / 1000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        self.place.step = Step::Deliver { transaction_time: since, routed: false };
        let checkpoint = serde_json::to_string(&self.place).unwrap_or_default();
        let owner = &self.engine.config.worker_id;
        let recorded =
            store.record_match(&self.request.id, owner, &answered, &checkpoint, Self::now()).await.map_err(failed)?;
        if !recorded {
            return Err(RequestEnd::LeaseLost);
        }
        self.request.checkpoint = checkpoint;
        self.request.state = RequestState::Exporting;
        Ok(())
    }

    /// One member's answer, with their Patient there found when the plan did not name it.
    async fn answered(&mut self, coverage: &str, answer: Answer, token: &str) -> Result<Answered, RequestEnd> {
        Ok(match answer {
            Answer::Matched { patient: Some(patient), .. } => {
                (coverage.to_owned(), MatchResult::Matched, Some(patient))
            }
            Answer::Matched { patient: None, identifier } => {
                let found = find_patient(&self.engine.http, &self.fhir_base, token, &identifier)
                    .await
                    .map_err(|e| self.back_off(&e))?;
                if found.is_none() {
                    self.place
                        .note(format!("member {coverage} matched, but no Patient there carries their identifier"));
                }
                let result = if found.is_some() { MatchResult::Matched } else { MatchResult::NoMatch };
                (coverage.to_owned(), result, found)
            }
            Answer::Refused { result, said } => {
                self.place.note(format!("member {coverage}: {said}"));
                (coverage.to_owned(), result, None)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_their_words() {
        assert_eq!(classify("the member's Consent cannot be honoured: it is not active"), MatchResult::ConsentRefused);
        assert_eq!(classify("more than one member matches; no member is returned"), MatchResult::SeveralMatches);
        assert_eq!(classify("no member matches the demographics"), MatchResult::NoMatch);
    }

    #[test]
    fn an_answer_without_member_identifier_is_not_a_match() {
        let answer = json!({"resourceType": "Parameters", "parameter": [
            {"name": "MemberId", "valueReference": {"reference": "Patient/p1"}}
        ]});
        assert!(read_match(&answer).is_err());
        let answer = json!({"resourceType": "Parameters", "parameter": [
            {"name": "MemberIdentifier", "valueIdentifier": {"system": "urn:x", "value": "RB-1"}},
            {"name": "MemberId", "valueReference": {"reference": "Patient/p1"}}
        ]});
        assert!(matches!(read_match(&answer), Ok(Answer::Matched { patient: Some(p), .. }) if p == "p1"));
    }
}
