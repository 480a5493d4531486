//! The `MemberBundle` each member is sent in (PDex `pdex-parameters-multi-member-match-bundle-in`):
//! the member as this plan knows them (HRex Patient demographics, with this request's key for
//! them), the old card as `CoverageToMatch`, this plan's coverage as `CoverageToLink` (must-
//! support elements only) and the member's Consent — all referring to the Patient locally.

use baton_store::{PreviousCoverage, Timestamp};
use baton_vocab::day;
use serde_json::{Value, json};

use crate::Engine;

/// The identifier system the submitted Patients carry this plan's key for the member in: the
/// answer's Groups contain the Patients as sent, so each result finds its member by it.
pub fn key_system(local_base: &str) -> String {
    format!("{}/previous-coverage", local_base.trim_end_matches('/'))
}

/// The member's bundle, or `None` when their Consent is no longer in force (they are left out).
pub(super) async fn member_bundle(engine: &Engine, coverage: &PreviousCoverage) -> Result<Option<Value>, String> {
    let store = &engine.store;
    let failed = |e: baton_store::StoreError| e.to_string();
    let Some(consent_id) = &coverage.consent_id else { return Ok(None) };
    let Some(consent) = store.consent(consent_id).await.map_err(failed)? else { return Ok(None) };
    if !consent.in_force(Timestamp::now()) {
        return Ok(None);
    }
    let account = store
        .account_by_id(coverage.member_account)
        .await
        .map_err(failed)?
        .ok_or_else(|| format!("member {} no longer exists", coverage.member_account.0))?;
    let own = crate::member_patient(store, &engine.config.local_base, coverage.member_account).await?;
    let own: Value = match store.read_resource("Patient", &own).await.map_err(failed)? {
        Some(stored) => serde_json::from_str(&stored.body).map_err(|e| e.to_string())?,
        None => json!({}),
    };
    let local = "Patient/1";
    let mut patient = json!({
        "resourceType": "Patient",
        "id": "1",
        "identifier": [{"system": key_system(&engine.config.local_base), "value": coverage.id}],
        "name": own["name"].clone(),
        "gender": own["gender"].as_str().unwrap_or("unknown"),
    });
    if let Some(member_id) = &account.member_id {
        patient["identifier"].as_array_mut().map(|ids| {
            ids.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                "system": format!("{}/member-id", engine.config.local_base),
                "value": member_id,
            }))
        });
    }
    if !patient["name"].as_array().is_some_and(|names| names.iter().any(|n| n["family"].is_string())) {
        patient["name"] = json!([split_name(&account.display_name)]);
    }
    if let Some(birth) = account.birth_date.or_else(|| own["birthDate"].as_str().and_then(day::parse)) {
        patient["birthDate"] = json!(day::format(birth));
    }
    for element in ["address", "telecom"] {
        if own[element].is_array() {
            patient[element] = own[element].clone();
        }
    }
    let mut period = serde_json::Map::new();
    if let Some(start) = coverage.coverage_start {
        period.insert("start".into(), json!(day::format(start)));
    }
    if let Some(end) = coverage.coverage_end {
        period.insert("end".into(), json!(day::format(end)));
    }
    let payer_name = engine.payers.credentials(&coverage.payer_id).map(|c| c.name).unwrap_or(coverage.payer_id.clone());
    let mut to_match = json!({
        "resourceType": "Coverage",
        "id": "1",
        "status": if coverage.concurrent { "active" } else { "cancelled" },
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
            "value": coverage.member_id,
        }],
        "subscriberId": coverage.member_id,
        "beneficiary": {"reference": local},
        "payor": [{"display": payer_name}],
    });
    if !period.is_empty() {
        to_match["period"] = Value::Object(period);
    }
    let mut to_link = json!({
        "resourceType": "Coverage",
        "id": "2",
        "status": "active",
        "beneficiary": {"reference": local},
        "payor": [{"display": engine.config.plan_name}],
    });
    if let Some(member_id) = &account.member_id {
        to_link["subscriberId"] = json!(member_id);
    }
    if let Some(start) = account.coverage_start {
        to_link["period"] = json!({"start": day::format(start)});
    }
    let mut consent: Value = serde_json::from_str(&consent.resource).map_err(|e| e.to_string())?;
    consent["patient"] = json!({"reference": local});
    consent["performer"] = json!([{"reference": local}]);
    Ok(Some(json!({"name": "MemberBundle", "part": [
        {"name": "MemberPatient", "resource": patient},
        {"name": "CoverageToMatch", "resource": to_match},
        {"name": "CoverageToLink", "resource": to_link},
        {"name": "Consent", "resource": consent},
    ]})))
}

/// A HumanName from a name written whole (the roster's): the last word the family name, the
/// words before it the given names. HRex matches on the family name; a plan that keeps names
/// whole has no better split.
fn split_name(text: &str) -> Value {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.split_last() {
        Some((family, given)) if !given.is_empty() => {
            json!({"use": "official", "text": text.trim(), "family": family, "given": given})
        }
        _ => json!({"use": "official", "text": text.trim(), "family": text.trim()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_name_is_split_at_its_last_word() {
        assert_eq!(split_name("Maria  Elena Garcia")["family"], "Garcia");
        assert_eq!(split_name("Maria  Elena Garcia")["given"], json!(["Maria", "Elena"]));
        assert_eq!(split_name("Cher")["family"], "Cher");
    }
}
