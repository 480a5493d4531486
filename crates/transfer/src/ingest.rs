//! Turning a resource received from the previous plan into one of this plan's records
//! (PDex ingest rules, spec digest §1.7):
//!
//! - a **new id**, opaque and derived from the source ([`RecordIds`]): the same resource always
//!   gets the same id here, so running a transfer again updates in place and never
//!   duplicates, and the id says nothing of the previous plan's (an id such as `…-hiv` would
//!   tell staff who may not see the record what it is about);
//! - every **reference rewritten** to the new ids; references to the member's Patient at the
//!   previous plan point at the member's own Patient here; a reference to anything that is not
//!   one of the previous plan's own resources — another server, this plan's own base (where it
//!   would file the record under another member), a `urn:` — is **withheld** and counted,
//!   never followed nor resolved here;
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
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Makes this plan's record ids from a previous plan's: a keyed hash (HMAC-SHA-256 under this
/// Baton's own secret, kept in its database) of the source's base, the type and the id. Without
/// the key an id cannot be checked against a guess.
#[derive(Clone)]
pub struct RecordIds {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for RecordIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordIds(***)")
    }
}

impl RecordIds {
    /// The name of the key in the store's instance secrets.
    pub const SECRET: &'static str = "record-ids";

    pub fn new(key: &[u8]) -> Self {
        Self { mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length") }
    }

    /// `<source prefix>-<32 hex digits>`.
    pub fn local_id(&self, source_prefix: &str, source_base: &str, resource_type: &str, source_id: &str) -> String {
        let mut mac = self.mac.clone();
        for part in [source_base, resource_type, source_id] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        format!("{source_prefix}-{}", &crate::hex(&mac.finalize().into_bytes())[..32])
    }
}

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
    pub ids: RecordIds,
}

/// What became of one received resource.
#[derive(Debug)]
pub enum Ingested {
    /// Ready to store.
    Store(Box<Received>),
    /// Sensitive, and the member excluded sensitive data: not stored. With the id it would
    /// have had here (what names it names nothing here).
    Excluded { reasons: Vec<Reason>, local_id: String },
    /// Cannot be stored; why.
    Rejected(String),
}

/// A received resource ready to store, and what ingest saw in it.
#[derive(Debug)]
pub struct Received {
    pub prepared: Prepared,
    /// References withheld: they named something other than the previous plan's resources.
    pub foreign_references: usize,
    /// The previous plan's records it names: the key of each one's `(type, id here)` (see
    /// [`crate::named::key`]) and its id at the previous plan.
    pub named: Vec<(u128, String)>,
}

/// A short, stable prefix for one source (8 hex digits of its base's SHA-256).
pub fn source_prefix(source_base: &str) -> String {
    let digest = Sha256::digest(source_base.trim_end_matches('/').as_bytes());
    format!("s{}", &crate::hex(&digest)[..8])
}

impl Context {
    /// The id a source resource gets here.
    pub fn local_id(&self, resource_type: &str, source_id: &str) -> String {
        self.ids.local_id(&self.source_prefix, &self.source_base, resource_type, source_id)
    }

    /// The local reference for a source `Type/id`, with its id here.
    fn local_reference(&self, resource_type: &str, id: &str) -> (String, Option<String>) {
        if resource_type == "Patient" && self.source_patient.as_deref() == Some(id) {
            (format!("Patient/{}", self.own_patient), None)
        } else {
            let local = self.local_id(resource_type, id);
            (format!("{resource_type}/{local}"), Some(local))
        }
    }

    /// Whether `reference` names one of the previous plan's own resources (or a resource
    /// contained in the one at hand).
    fn is_source_reference(&self, reference: &str) -> bool {
        match Reference::parse(reference) {
            Reference::Contained { .. } => true,
            parsed => parsed.local_to(&self.source_base).is_some(),
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
        let local_id = ctx.local_id(&resource_type, &source_id);
        return (key, Ingested::Excluded { reasons, local_id });
    }

    let foreign_references = walk::mask_references(&mut resource, |reference| !ctx.is_source_reference(reference));
    let mut named = vec![];
    walk::rewrite_references(&mut resource, |_, reference| {
        let (resource_type, id) = Reference::parse(reference).local_to(&ctx.source_base)?;
        let (rewritten, local_id) = ctx.local_reference(resource_type, id);
        if let Some(local_id) = local_id {
            named.push((crate::named::key(resource_type, &local_id), id.to_owned()));
        }
        Some(rewritten)
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
            if resource_type != "Patient"
                && member.is_some()
                && ctx.source_patient.is_some()
                && prepared.write.patient_id.as_deref().is_some_and(|p| p != ctx.own_patient)
            {
                // The member's token reached a record about someone else: it is not theirs to
                // bring, and must not land in their record here (nor in anyone else's).
                return (key, Ingested::Rejected("it is about another patient than the member".into()));
            }
            if member.is_some() || resource_type == "Patient" {
                // The member's previous-plan Patient, and every record of theirs (one that
                // names no patient, or only one that was withheld, too), belong in their
                // compartment here.
                prepared.write.patient_id = Some(ctx.own_patient.clone());
            }
            (key, Ingested::Store(Box::new(Received { prepared, foreign_references, named })))
        }
        Err(error) => (key, Ingested::Rejected(error.to_string())),
    }
}

pub use baton_fhir::financial::strip_financial;

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
            ids: RecordIds::new(b"test key"),
        }
    }

    fn received(ctx: &Context, resource: Value) -> Received {
        match ingest(ctx, resource).1 {
            Ingested::Store(received) => *received,
            other => panic!("not stored: {other:?}"),
        }
    }

    fn stored(ctx: &Context, resource: Value) -> Prepared {
        received(ctx, resource).prepared
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
            "serviceProvider": {"reference": "https://elsewhere.example/fhir/Organization/o1", "display": "Elsewhere"},
            "extension": [{"url": "http://example.org/unknown", "valueString": "kept"}]
        });
        let received = received(&c, encounter);
        let prepared = &received.prepared;
        let body = &prepared.write.body;
        let new_id = body["id"].as_str().unwrap();
        assert_ne!(new_id, "e1");
        assert_eq!(new_id, c.local_id("Encounter", "e1"), "deterministic");
        assert_eq!(body["subject"]["reference"], "Patient/member-7", "the member's own Patient");
        let practitioner = c.local_id("Practitioner", "dr1");
        assert_eq!(body["participant"][0]["individual"]["reference"], format!("Practitioner/{practitioner}"));
        assert_eq!(received.named, [(crate::named::key("Practitioner", &practitioner), "dr1".to_owned())]);
        assert_eq!(
            body["serviceProvider"]["extension"][0]["valueCode"], "masked",
            "another server's resource is withheld, never followed"
        );
        assert!(!body.to_string().contains("elsewhere.example") && !body.to_string().contains("Elsewhere"));
        assert_eq!(received.foreign_references, 1);
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
        let c = ctx(false);
        match ingest(&c, condition.clone()).1 {
            Ingested::Excluded { reasons, local_id } => {
                assert_eq!(reasons[0].kind, sensitivity::Kind::SubstanceUse);
                assert_eq!(local_id, c.local_id("Condition", "c1"));
            }
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
    fn ids_here_say_nothing_of_the_ids_there() {
        let c = ctx(true);
        for source_id in ["heldout-hiv", "heldout-gad", &"x".repeat(64), "substance-use-1"] {
            let id = c.local_id("Condition", source_id);
            assert!(id.len() <= 64 && baton_fhir::is_valid_id(&id), "{id}");
            assert!(id.starts_with(&format!("{}-", c.source_prefix)));
            let opaque = id.strip_prefix(&format!("{}-", c.source_prefix)).unwrap();
            assert_eq!(opaque.len(), 32);
            for word in ["heldout", "hiv", "gad", "xxxx", "substance"] {
                assert!(!id.contains(word), "{id} says {word}");
            }
        }
        assert_ne!(c.local_id("Condition", "a"), c.local_id("Observation", "a"), "the type counts");
        let other_key = Context { ids: RecordIds::new(b"another key"), ..c.clone() };
        assert_ne!(c.local_id("Condition", "a"), other_key.local_id("Condition", "a"), "keyed: no guess checks out");
    }

    #[test]
    fn references_that_could_reach_another_member_are_withheld() {
        let c = ctx(true);
        // A hostile previous plan names a member of this plan, on this plan's own base.
        let condition = json!({"resourceType": "Condition", "id": "c9",
            "subject": {"reference": "https://new.example/fhir/Patient/member-8"},
            "evidence": [{"detail": [{"reference": "Observation/o1"}, {"reference": "urn:uuid:5a6b"},
                {"reference": "#contained-1"}]}]});
        let received = received(&c, condition);
        let body = &received.prepared.write.body;
        assert_eq!(received.foreign_references, 2);
        assert_eq!(body["subject"]["extension"][0]["valueCode"], "masked");
        assert!(!body.to_string().contains("member-8"));
        let details: Vec<&str> = body["evidence"][0]["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["reference"].as_str().unwrap())
            .collect();
        assert_eq!(details, [format!("Observation/{}", c.local_id("Observation", "o1")).as_str(), "#contained-1"]);
        assert_eq!(
            received.prepared.write.patient_id.as_deref(),
            Some("member-7"),
            "filed under the transfer's member"
        );
        assert!(received.prepared.write.references.iter().all(|r| r.target_id != "member-8"));
    }

    #[test]
    fn a_record_about_another_patient_is_refused() {
        let c = ctx(true);
        // The previous plan's member p-other: a record of theirs is not this member's to bring.
        let condition = json!({"resourceType": "Condition", "id": "c-other", "subject": {"reference": "Patient/p-other"}});
        match ingest(&c, condition).1 {
            Ingested::Rejected(reason) => assert!(reason.contains("another patient"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // One that names no patient at all is the member's, filed under them.
        let observation = json!({"resourceType": "Observation", "id": "o-none", "status": "final",
            "code": {"text": "x"}});
        assert_eq!(stored(&c, observation).write.patient_id.as_deref(), Some("member-7"));
    }
}
