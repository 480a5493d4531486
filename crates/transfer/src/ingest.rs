//! Turning a resource received from the previous plan into one of this plan's records
//! (PDex ingest rules, spec digest §1.7):
//!
//! - a **new id**, derived from the source (so the same resource always gets the same id here:
//!   running a transfer again updates in place and never duplicates): `<source prefix>-<source
//!   id>`, or a hash when that would be too long;
//! - every **reference rewritten** to the new ids; references to the member's Patient at the
//!   previous plan point at the member's own Patient here; references to other servers are left
//!   alone and never fetched;
//! - the **source id kept** in `identifier` (system = the source's FHIR base) and in
//!   `meta.source`; `meta.security` labels kept;
//! - **sensitive** resources not stored when the member excluded them (labels, or the code
//!   classifier), counted by reason;
//! - claim **payment and cost-sharing amounts** removed unless the plan keeps them;
//! - unknown elements kept as they came.

use baton_fhir::exchange::{SHARED_TYPES, is_exchange_type};
use baton_fhir::reference::Reference;
use baton_fhir::sensitivity::{self, Reason};
use baton_fhir::walk;
use baton_records::{Origin, Prepared, prepare};
use baton_store::AccountId;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The facts ingest needs about one transfer.
#[derive(Debug, Clone)]
pub struct Context {
    /// The previous plan's FHIR base (no trailing slash).
    pub source_base: String,
    /// Prefix of the ids this source's resources get here.
    pub source_prefix: String,
    /// The member's Patient id at the previous plan.
    pub source_patient: Option<String>,
    /// The member's own Patient id here.
    pub own_patient: String,
    pub member: AccountId,
    pub include_sensitive: bool,
    pub keep_financial: bool,
    /// This plan's FHIR base (references to it are local).
    pub local_base: String,
}

/// What became of one received resource.
#[derive(Debug)]
pub enum Ingested {
    /// Ready to store.
    Store(Box<Prepared>),
    /// Sensitive, and the member excluded sensitive data: not stored.
    Excluded(Vec<Reason>),
    /// Cannot be stored; why.
    Rejected(String),
}

/// A short, stable prefix for one source (8 hex digits of its base's SHA-256).
pub fn source_prefix(source_base: &str) -> String {
    let digest = Sha256::digest(source_base.trim_end_matches('/').as_bytes());
    format!("s{}", &crate::hex(&digest)[..8])
}

impl Context {
    /// The id a source resource gets here.
    pub fn local_id(&self, resource_type: &str, source_id: &str) -> String {
        let candidate = format!("{}-{source_id}", self.source_prefix);
        if candidate.len() <= 64 && baton_fhir::is_valid_id(&candidate) {
            candidate
        } else {
            let digest = Sha256::digest(format!("{}|{resource_type}|{source_id}", self.source_base).as_bytes());
            format!("{}-h{}", self.source_prefix, &crate::hex(&digest)[..40])
        }
    }

    /// The source id of a local id made by [`Context::local_id`], when it can be told.
    pub fn source_id_of<'a>(&self, local_id: &'a str) -> Option<&'a str> {
        let rest = local_id.strip_prefix(&self.source_prefix)?.strip_prefix('-')?;
        (!rest.starts_with('h') || rest.len() != 41).then_some(rest)
    }

    /// The local reference for a source `Type/id`.
    fn local_reference(&self, resource_type: &str, id: &str) -> String {
        if resource_type == "Patient" && self.source_patient.as_deref() == Some(id) {
            format!("Patient/{}", self.own_patient)
        } else {
            format!("{resource_type}/{}", self.local_id(resource_type, id))
        }
    }
}

/// Ingests one resource. Returns its source key (`Type/id`, or a description) and what became of it.
pub fn ingest(ctx: &Context, mut resource: Value) -> (String, Ingested) {
    let Some(object) = resource.as_object() else {
        return ("(not an object)".into(), Ingested::Rejected("the entry is not a JSON object".into()));
    };
    let resource_type = match object.get("resourceType").and_then(Value::as_str) {
        Some(t) if baton_fhir::is_resource_type_name(t) => t.to_owned(),
        _ => return ("(no resourceType)".into(), Ingested::Rejected("the entry has no valid resourceType".into())),
    };
    let source_id = match object.get("id").and_then(Value::as_str) {
        Some(id) if baton_fhir::is_valid_id(id) => id.to_owned(),
        _ => return (format!("{resource_type}/(no id)"), Ingested::Rejected("the resource has no valid id".into())),
    };
    let key = format!("{resource_type}/{source_id}");
    if !is_exchange_type(&resource_type) {
        return (key, Ingested::Rejected(format!("{resource_type} is not a type payer-to-payer exchange covers")));
    }

    let reasons = sensitivity::assess(&resource);
    if !reasons.is_empty() && !ctx.include_sensitive {
        return (key, Ingested::Excluded(reasons));
    }

    walk::rewrite_references(&mut resource, |_, reference| {
        let parsed = Reference::parse(reference);
        parsed.local_to(&ctx.source_base).map(|(t, id)| ctx.local_reference(t, id))
    });

    let local_id = ctx.local_id(&resource_type, &source_id);
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), Value::String(local_id));
        let meta = object.entry("meta").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            meta.insert("source".into(), Value::String(format!("{}/{key}", ctx.source_base)));
        }
        if resource_type != "Provenance" {
            let source_identifier = json!({"system": ctx.source_base, "value": source_id});
            let identifiers = object.entry("identifier").or_insert_with(|| Value::Array(vec![]));
            if let Some(list) = identifiers.as_array_mut()
                && !list.contains(&source_identifier)
            {
                list.push(source_identifier);
            }
        }
        if resource_type == "Patient" {
            let link = json!({"other": {"reference": format!("Patient/{}", ctx.own_patient)}, "type": "seealso"});
            let links = object.entry("link").or_insert_with(|| Value::Array(vec![]));
            if let Some(list) = links.as_array_mut()
                && !list.contains(&link)
            {
                list.push(link);
            }
        }
        if resource_type == "ExplanationOfBenefit" && !ctx.keep_financial {
            strip_financial(object);
        }
    }

    let member = (!SHARED_TYPES.contains(&resource_type.as_str())).then_some(ctx.member);
    let origin = Origin { system: ctx.source_base.clone(), id: source_id };
    match prepare(resource, &ctx.local_base, member, Some(origin)) {
        Ok(mut prepared) => {
            if resource_type == "Patient" {
                // The member's previous-plan Patient belongs in their compartment here.
                prepared.write.patient_id = Some(ctx.own_patient.clone());
            }
            (key, Ingested::Store(Box::new(prepared)))
        }
        Err(error) => (key, Ingested::Rejected(error.to_string())),
    }
}

/// Removes provider remittances and member cost-sharing from a claim: totals, payment, benefit
/// balances, and every adjudication amount or value (CARIN BB "Basis" keeps none of them).
pub fn strip_financial(eob: &mut Map<String, Value>) {
    eob.remove("total");
    eob.remove("payment");
    eob.remove("benefitBalance");
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(adjudications)) = map.get_mut("adjudication") {
                    for adjudication in adjudications.iter_mut() {
                        if let Some(a) = adjudication.as_object_mut() {
                            a.remove("amount");
                            a.remove("value");
                        }
                    }
                }
                for field in ["net", "unitPrice", "factor"] {
                    map.remove(field);
                }
                for child in map.values_mut() {
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    for field in ["item", "addItem", "adjudication"] {
        if let Some(value) = eob.get_mut(field) {
            walk(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(include_sensitive: bool) -> Context {
        let source_base = "https://old.example/fhir".to_owned();
        Context {
            source_prefix: source_prefix(&source_base),
            source_base,
            source_patient: Some("p-old".into()),
            own_patient: "member-7".into(),
            member: AccountId(7),
            include_sensitive,
            keep_financial: false,
            local_base: "https://new.example/fhir".into(),
        }
    }

    fn stored(ctx: &Context, resource: Value) -> Prepared {
        match ingest(ctx, resource).1 {
            Ingested::Store(prepared) => *prepared,
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn new_ids_rewritten_references_and_kept_source() {
        let c = ctx(true);
        let encounter = json!({
            "resourceType": "Encounter",
            "id": "e1",
            "meta": {"versionId": "3", "lastUpdated": "2020-01-01T00:00:00Z", "security": [{"system": "s", "code": "N"}]},
            "subject": {"reference": "Patient/p-old"},
            "participant": [{"individual": {"reference": "https://old.example/fhir/Practitioner/dr1"}}],
            "serviceProvider": {"reference": "https://elsewhere.example/fhir/Organization/o1"},
            "extension": [{"url": "http://example.org/unknown", "valueString": "kept"}]
        });
        let prepared = stored(&c, encounter);
        let body = &prepared.write.body;
        let new_id = body["id"].as_str().unwrap();
        assert_ne!(new_id, "e1");
        assert_eq!(new_id, c.local_id("Encounter", "e1"), "deterministic");
        assert_eq!(c.source_id_of(new_id), Some("e1"));
        assert_eq!(body["subject"]["reference"], "Patient/member-7", "the member's own Patient");
        assert_eq!(
            body["participant"][0]["individual"]["reference"],
            format!("Practitioner/{}", c.local_id("Practitioner", "dr1"))
        );
        assert_eq!(
            body["serviceProvider"]["reference"], "https://elsewhere.example/fhir/Organization/o1",
            "other servers untouched"
        );
        assert_eq!(body["identifier"][0], json!({"system": "https://old.example/fhir", "value": "e1"}));
        assert_eq!(body["meta"]["source"], "https://old.example/fhir/Encounter/e1");
        assert!(body["meta"].get("versionId").is_none());
        assert_eq!(body["meta"]["security"][0]["code"], "N", "labels kept");
        assert_eq!(body["extension"][0]["valueString"], "kept", "unknown elements kept");
        assert_eq!(prepared.write.patient_id.as_deref(), Some("member-7"));
        assert_eq!(prepared.write.member_account, Some(AccountId(7)));
        assert_eq!(prepared.write.source_id.as_deref(), Some("e1"));
    }

    #[test]
    fn sensitive_resources_are_excluded_only_when_the_member_said_so() {
        let condition = json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p-old"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"}]}});
        match ingest(&ctx(false), condition.clone()).1 {
            Ingested::Excluded(reasons) => assert_eq!(reasons[0].kind, sensitivity::Kind::SubstanceUse),
            other => panic!("{other:?}"),
        }
        assert!(stored(&ctx(true), condition).write.sensitive);
    }

    #[test]
    fn bad_entries_are_rejected_with_a_reason() {
        let c = ctx(true);
        for (resource, expected) in [
            (json!([1, 2]), "not a JSON object"),
            (json!({"id": "x"}), "no valid resourceType"),
            (json!({"resourceType": "Condition"}), "no valid id"),
            (json!({"resourceType": "Condition", "id": "has space"}), "no valid id"),
            (json!({"resourceType": "Binary", "id": "b1"}), "not a type"),
        ] {
            match ingest(&c, resource).1 {
                Ingested::Rejected(reason) => assert!(reason.contains(expected), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn claim_amounts_are_removed() {
        let eob = json!({"resourceType": "ExplanationOfBenefit", "id": "x", "use": "claim",
            "patient": {"reference": "Patient/p-old"},
            "total": [{"amount": {"value": 10}}], "payment": {"amount": {"value": 5}},
            "item": [{"sequence": 1, "net": {"value": 3},
                "adjudication": [{"category": {"text": "submitted"}, "amount": {"value": 3}}]}],
            "adjudication": [{"category": {"text": "x"}, "value": 2}]});
        let body = stored(&ctx(true), eob).write.body;
        let text = body.to_string();
        assert!(body.get("total").is_none() && body.get("payment").is_none());
        assert!(!text.contains("\"amount\"") && !text.contains("\"net\""), "{text}");
        assert_eq!(body["item"][0]["adjudication"][0]["category"]["text"], "submitted", "categories stay");
    }

    #[test]
    fn the_previous_plans_patient_is_linked_to_the_members_own() {
        let patient = json!({"resourceType": "Patient", "id": "p-old", "name": [{"family": "Garcia"}]});
        let prepared = stored(&ctx(true), patient);
        assert_eq!(prepared.write.body["link"][0]["other"]["reference"], "Patient/member-7");
        assert_eq!(prepared.write.patient_id.as_deref(), Some("member-7"));
        assert_ne!(prepared.write.id, "member-7", "stored beside the member's own Patient, not over it");
    }

    #[test]
    fn very_long_source_ids_are_hashed() {
        let c = ctx(true);
        let long = "x".repeat(64);
        let id = c.local_id("Observation", &long);
        assert!(id.len() <= 64 && baton_fhir::is_valid_id(&id));
        assert_eq!(c.source_id_of(&id), None);
    }
}
