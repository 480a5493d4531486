//! The member's own Patient in this plan's store.

use baton_store::{AccountId, PayerLink, Store};
use serde_json::{Value, json};

use super::JobEnd;
use crate::Engine;

pub(super) async fn own_patient(engine: &Engine, link: &PayerLink) -> Result<String, JobEnd> {
    member_patient(&engine.store, &engine.config.local_base, link.member_account).await.map_err(JobEnd::Failed)
}

/// The member's own Patient in this plan's store (its id); created from their account when
/// they have none yet.
pub async fn member_patient(store: &Store, local_base: &str, member: AccountId) -> Result<String, String> {
    let account = store
        .account_by_id(member)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the member's account no longer exists".to_owned())?;
    if let Some(id) = account.patient_id
        && store.read_resource("Patient", &id).await.map_err(|e| e.to_string())?.is_some()
    {
        return Ok(id);
    }
    let id = format!("member-{}", account.id.0);
    let mut patient = json!({
        "resourceType": "Patient",
        "id": id,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "active": true,
        "name": [{"text": account.display_name}],
        "identifier": []
    });
    if let Some(member_id) = &account.member_id {
        patient["identifier"] = json!([{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
            "system": format!("{}/member-id", local_base),
            "value": member_id
        }]);
    }
    if let Some(birth_date) = &account.birth_date {
        patient["birthDate"] = Value::String(baton_vocab::day::format(*birth_date));
    }
    let prepared = baton_records::prepare(patient, local_base, Some(member), None).map_err(|e| e.to_string())?;
    store.put_resources(vec![prepared.write]).await.map_err(|e| e.to_string())?;
    store.set_account_patient(member, &id).await.map_err(|e| e.to_string())?;
    Ok(id)
}
