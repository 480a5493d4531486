//! The plan's FHIR record store: how a FHIR resource becomes a stored, searchable record.
//!
//! [`prepare`] reads what searches need (patient compartment, dates, identifiers,
//! references — see `baton_fhir::index`) and whether the resource is sensitive
//! (`baton_fhir::sensitivity`); [`put`] stores a batch (the store marks a Provenance that
//! points at a sensitive record sensitive, so that it cannot reveal what it is about). Both sides of
//! Baton use it: the data-holder API serves these records, the transfer engine writes them.

pub mod narrative;
pub mod summary;

use baton_fhir::sensitivity::{self, Reason};
use baton_fhir::{index, is_resource_type_name, is_valid_id, resource_id, resource_type};
use baton_store::{
    AccountId, IndexedIdentifier, IndexedReference, ResourceWrite, Store, StoreError, StoredResource, Timestamp,
};
use serde_json::Value;
use thiserror::Error;

/// Why a resource cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing or invalid resourceType")]
    ResourceType,
    #[error("missing or invalid id")]
    Id,
}

/// A resource ready to store, with why it is sensitive (empty when it is not).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub write: ResourceWrite,
    pub reasons: Vec<Reason>,
}

/// Where a record came from, when it was received from another plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub system: String,
    pub id: String,
}

/// Prepares `resource` for the store. `base` is this server's FHIR base (references to it are
/// local); `member` is the account the record is about, when known.
pub fn prepare(
    resource: Value,
    base: &str,
    member: Option<AccountId>,
    origin: Option<Origin>,
) -> Result<Prepared, RecordError> {
    if !resource.is_object() {
        return Err(RecordError::NotAnObject);
    }
    let resource_type =
        resource_type(&resource).filter(|t| is_resource_type_name(t)).ok_or(RecordError::ResourceType)?.to_owned();
    let id = resource_id(&resource).filter(|id| is_valid_id(id)).ok_or(RecordError::Id)?.to_owned();
    let facts = index::facts(&resource_type, &resource, base);
    let reasons = sensitivity::assess(&resource);
    let write = ResourceWrite {
        resource_type,
        id,
        member_account: member,
        patient_id: facts.patient_id,
        source_system: origin.as_ref().map(|o| o.system.clone()),
        source_id: origin.map(|o| o.id),
        security: sensitivity::security_labels(&resource),
        sensitive: !reasons.is_empty(),
        date_start: facts.dates.map(|d| Timestamp::from_millis(d.start)),
        date_end: facts.dates.map(|d| Timestamp::from_millis(d.end)),
        identifiers: facts.identifiers.into_iter().map(|(system, value)| IndexedIdentifier { system, value }).collect(),
        references: facts
            .references
            .into_iter()
            .map(|(path, target_type, target_id)| IndexedReference { path, target_type, target_id })
            .collect(),
        body: resource,
    };
    Ok(Prepared { write, reasons })
}

/// Stores prepared resources in one transaction. A Provenance without a compartment of its
/// own takes its targets' (in this batch or already stored); what stays outside every
/// compartment is a directory entry, no member's; a Provenance naming a sensitive record is
/// stored sensitive — the store's rule on every write path ([`Store::put_resources`]).
pub async fn put(store: &Store, batch: Vec<Prepared>) -> Result<Vec<StoredResource>, StoreError> {
    let compartments: std::collections::HashMap<(String, String), String> = batch
        .iter()
        .filter_map(|p| Some(((p.write.resource_type.clone(), p.write.id.clone()), p.write.patient_id.clone()?)))
        .collect();
    let mut writes = Vec::with_capacity(batch.len());
    for Prepared { mut write, .. } in batch {
        if write.resource_type == "Provenance" && write.patient_id.is_none() {
            for target in write.references.iter().filter(|r| r.path == "target") {
                let key = (target.target_type.clone(), target.target_id.clone());
                let compartment = match compartments.get(&key) {
                    Some(compartment) => Some(compartment.clone()),
                    None => {
                        store.read_resource(&target.target_type, &target.target_id).await?.and_then(|s| s.patient_id)
                    }
                };
                if compartment.is_some() {
                    write.patient_id = compartment;
                    break;
                }
            }
        }
        // Outside every patient compartment is a directory entry (the plan, a care provider):
        // shared by every member whose records name it, so no one member's.
        if write.patient_id.is_none() {
            write.member_account = None;
        }
        writes.push(write);
    }
    store.put_resources(writes).await
}

/// What [`load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub stored: usize,
    /// Resources that could not be stored: their position in the input and why.
    pub rejected: Vec<(usize, RecordError)>,
}

/// Stores a stream of resources (e.g. a synthetic member's record, or IG examples) in batches.
pub async fn load(
    store: &Store,
    resources: impl IntoIterator<Item = Value>,
    base: &str,
    member: Option<AccountId>,
) -> Result<LoadReport, StoreError> {
    const BATCH: usize = 500;
    let mut report = LoadReport::default();
    let mut batch = Vec::with_capacity(BATCH);
    for (position, resource) in resources.into_iter().enumerate() {
        match prepare(resource, base, member, None) {
            Ok(prepared) => batch.push(prepared),
            Err(error) => report.rejected.push((position, error)),
        }
        if batch.len() == BATCH {
            report.stored += put(store, std::mem::take(&mut batch)).await?.len();
        }
    }
    if !batch.is_empty() {
        report.stored += put(store, batch).await?.len();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BASE: &str = "https://old.example/fhir";

    #[test]
    fn prepares_search_facts_and_sensitivity() {
        let condition = json!({
            "resourceType": "Condition",
            "id": "c1",
            "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]},
            "subject": {"reference": "Patient/p1"},
            "onsetDateTime": "2022-05-01",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}]}
        });
        let prepared = prepare(condition, BASE, Some(AccountId(7)), None).unwrap();
        assert_eq!(prepared.write.patient_id.as_deref(), Some("p1"));
        assert_eq!(prepared.write.member_account, Some(AccountId(7)));
        assert!(prepared.write.sensitive);
        assert_eq!(prepared.write.security, ["http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY"]);
        assert_eq!(prepared.reasons.len(), 2, "labelled and classified");
        assert!(prepared.write.date_start.is_some());
    }

    #[test]
    fn refuses_what_cannot_be_stored() {
        assert_eq!(prepare(json!([1]), BASE, None, None).unwrap_err(), RecordError::NotAnObject);
        assert_eq!(prepare(json!({"id": "x"}), BASE, None, None).unwrap_err(), RecordError::ResourceType);
        assert_eq!(prepare(json!({"resourceType": "Patient"}), BASE, None, None).unwrap_err(), RecordError::Id);
        assert_eq!(
            prepare(json!({"resourceType": "Patient", "id": "a/b"}), BASE, None, None).unwrap_err(),
            RecordError::Id
        );
    }

    #[tokio::test]
    async fn provenance_of_sensitive_records_is_sensitive() {
        baton_store::testing::on_sqlite(|store| async move {
            let sensitive = json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"}]}});
            let ordinary = json!({"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"}});
            let provenance = |id: &str, target: &str| {
                json!({"resourceType": "Provenance", "id": id, "target": [{"reference": target}], "recorded": "2024-01-01T00:00:00Z"})
            };
            // The sensitive target stored earlier, the other one in the same batch.
            put(&store, vec![prepare(sensitive, BASE, None, None).unwrap()]).await.unwrap();
            let stored = put(
                &store,
                vec![
                    prepare(ordinary, BASE, None, None).unwrap(),
                    prepare(provenance("pv1", "Condition/c1"), BASE, None, None).unwrap(),
                    prepare(provenance("pv2", "Condition/c2"), BASE, None, None).unwrap(),
                ],
            )
            .await
            .unwrap();
            let by_id = |id: &str| stored.iter().find(|r| r.id == id).unwrap().clone();
            assert!(by_id("pv1").sensitive);
            assert!(!by_id("pv2").sensitive);
            assert_eq!(by_id("pv1").patient_id.as_deref(), Some("p1"), "takes its target's compartment");
            assert_eq!(by_id("pv2").patient_id.as_deref(), Some("p1"));
        })
        .await;
    }
}
