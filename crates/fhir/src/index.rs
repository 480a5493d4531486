//! What searches need from a resource: its patient compartment, its clinical or service date
//! range, its identifiers and the references `_include` / `_revinclude` / `$everything` follow.

use serde_json::Value;

use crate::datetime::{self, Range};
use crate::reference::Reference;
use crate::walk;

/// The search facts of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchFacts {
    /// The Patient whose compartment this resource is in (its own id for a Patient).
    pub patient_id: Option<String>,
    pub dates: Option<Range>,
    pub identifiers: Vec<(String, String)>,
    /// `(search parameter, target type, target id)`.
    pub references: Vec<(String, String, String)>,
}

/// Where each type keeps the reference to its patient (first match wins).
fn patient_paths(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Coverage" => &["beneficiary", "subscriber"],
        "ExplanationOfBenefit" | "AllergyIntolerance" | "Immunization" => &["patient"],
        "CareTeam" | "CarePlan" | "Condition" | "DiagnosticReport" | "DocumentReference" | "Encounter" | "Goal"
        | "MedicationDispense" | "MedicationRequest" | "Observation" | "Procedure" => &["subject", "patient"],
        "Device" => &["patient"],
        _ => &[],
    }
}

/// The element(s) holding the date a type's date search parameter uses, in order of preference.
fn date_paths(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "AllergyIntolerance" => &["onsetDateTime", "onsetPeriod", "recordedDate"],
        "CarePlan" | "CareTeam" | "Encounter" => &["period"],
        "Condition" => &["onsetDateTime", "onsetPeriod", "recordedDate"],
        "Coverage" => &["period"],
        "DiagnosticReport" | "Observation" => &["effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"],
        "DocumentReference" => &["context.period", "date"],
        "ExplanationOfBenefit" => &["billablePeriod", "item.servicedDate", "item.servicedPeriod", "created"],
        "Goal" => &["startDate"],
        "Immunization" => &["occurrenceDateTime"],
        "MedicationDispense" => &["whenHandedOver", "whenPrepared"],
        "MedicationRequest" => &["authoredOn"],
        "Procedure" => &["performedDateTime", "performedPeriod"],
        "Provenance" => &["recorded"],
        _ => &[],
    }
}

/// The date search parameter names each type answers to.
pub fn date_parameters(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "AllergyIntolerance" | "CarePlan" | "CareTeam" | "DiagnosticReport" | "DocumentReference" | "Encounter"
        | "Immunization" | "Observation" | "Procedure" => &["date"],
        "Condition" => &["onset-date"],
        "ExplanationOfBenefit" => &["service-date"],
        "Goal" => &["start-date"],
        "MedicationDispense" => &["whenhandedover"],
        "MedicationRequest" => &["authoredon"],
        "Provenance" => &["recorded"],
        _ => &[],
    }
}

/// Named reference search parameters: `(type, element path, parameter)`.
const REFERENCE_PARAMETERS: &[(&str, &str, &str)] = &[
    ("ExplanationOfBenefit", "insurance.coverage", "coverage"),
    ("ExplanationOfBenefit", "provider", "provider"),
    ("ExplanationOfBenefit", "insurer", "insurer"),
    ("ExplanationOfBenefit", "careTeam.provider", "care-team"),
    ("ExplanationOfBenefit", "facility", "facility"),
    ("Provenance", "target", "target"),
    ("Provenance", "agent.who", "agent"),
    ("Encounter", "participant.individual", "practitioner"),
    ("Encounter", "serviceProvider", "service-provider"),
    ("MedicationRequest", "requester", "requester"),
    ("MedicationRequest", "medicationReference", "medication"),
    ("MedicationDispense", "medicationReference", "medication"),
    ("Coverage", "payor", "payor"),
];

/// The search parameter a reference at `path` answers to: a named parameter above, else `ref`.
/// Every local reference is indexed, so that `$everything` can follow references to directory
/// entries and a transfer can find references whose target it does not have.
fn reference_parameter(resource_type: &str, path: &str) -> &'static str {
    REFERENCE_PARAMETERS
        .iter()
        .find(|(t, p, _)| *t == resource_type && *p == path)
        .map(|(_, _, param)| *param)
        .unwrap_or("ref")
}

/// Extracts the search facts of `resource` (of type `resource_type`). `base` is the FHIR base
/// the resource's absolute references count as local to (its own server).
pub fn facts(resource_type: &str, resource: &Value, base: &str) -> SearchFacts {
    let mut facts = SearchFacts { patient_id: patient_of(resource_type, resource, base), ..Default::default() };

    for path in date_paths(resource_type) {
        let range = walk::at_path(resource, path).into_iter().filter_map(datetime::of_value).reduce(Range::union);
        if let Some(range) = range {
            facts.dates = Some(range);
            break;
        }
    }

    if let Some(identifiers) = resource.get("identifier") {
        let list: Vec<&Value> = match identifiers {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for identifier in list {
            if let Some(value) = identifier.get("value").and_then(Value::as_str) {
                let system = identifier.get("system").and_then(Value::as_str).unwrap_or("");
                facts.identifiers.push((system.to_owned(), value.to_owned()));
            }
        }
    }

    // Each (parameter, target) once, in the order first met; a set keeps this linear for a
    // Provenance with a hundred thousand targets.
    let mut seen = std::collections::HashSet::new();
    walk::references(resource, |path, reference| {
        if let Some((target_type, target_id)) = Reference::parse(reference).local_to(base) {
            let param = reference_parameter(resource_type, path);
            let entry = (param.to_owned(), target_type.to_owned(), target_id.to_owned());
            if seen.insert(entry.clone()) {
                facts.references.push(entry);
            }
        }
    });
    facts
}

/// The patient a resource is about, from the reference its type uses for that.
pub fn patient_of(resource_type: &str, resource: &Value, base: &str) -> Option<String> {
    if resource_type == "Patient" {
        return crate::resource_id(resource).map(str::to_owned);
    }
    patient_paths(resource_type).iter().find_map(|path| {
        walk::at_path(resource, path).into_iter().find_map(|r| {
            let text = r.get("reference")?.as_str()?;
            match Reference::parse(text).local_to(base) {
                Some(("Patient", id)) => Some(id.to_owned()),
                _ => None,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BASE: &str = "https://old.example/fhir";

    #[test]
    fn claim_facts() {
        let eob = json!({
            "resourceType": "ExplanationOfBenefit",
            "identifier": [{"system": "urn:claims", "value": "C-1"}],
            "patient": {"reference": "Patient/p1"},
            "billablePeriod": {"start": "2021-03-01", "end": "2021-03-05"},
            "item": [{"servicedDate": "2021-03-02"}],
            "insurer": {"reference": "Organization/payer"},
            "provider": {"reference": "https://old.example/fhir/Practitioner/dr1"},
            "insurance": [{"coverage": {"reference": "Coverage/cov1"}}],
            "careTeam": [{"provider": {"reference": "https://elsewhere.example/fhir/Practitioner/x"}}]
        });
        let facts = facts("ExplanationOfBenefit", &eob, BASE);
        assert_eq!(facts.patient_id.as_deref(), Some("p1"));
        assert_eq!(facts.identifiers, [("urn:claims".to_owned(), "C-1".to_owned())]);
        let range = facts.dates.unwrap();
        assert_eq!(crate::datetime::format_date(range.start), "2021-03-01");
        assert_eq!(crate::datetime::format_date(range.end), "2021-03-05");
        let mut refs: Vec<String> = facts.references.iter().map(|(p, t, i)| format!("{p}:{t}/{i}")).collect();
        refs.sort();
        assert_eq!(
            refs,
            ["coverage:Coverage/cov1", "insurer:Organization/payer", "provider:Practitioner/dr1", "ref:Patient/p1"],
            "every local reference, named where a search parameter names it"
        );
    }

    #[test]
    fn compartments_by_type() {
        let coverage = json!({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p9"}});
        assert_eq!(patient_of("Coverage", &coverage, BASE).as_deref(), Some("p9"));
        let observation = json!({"subject": {"reference": "Group/g1"}});
        assert_eq!(patient_of("Observation", &observation, BASE), None);
        let patient = json!({"resourceType": "Patient", "id": "p3"});
        assert_eq!(patient_of("Patient", &patient, BASE).as_deref(), Some("p3"));
        let foreign = json!({"subject": {"reference": "https://elsewhere.example/Patient/p1"}});
        assert_eq!(patient_of("Condition", &foreign, BASE), None);
    }

    #[test]
    fn provenance_targets_are_indexed() {
        let provenance = json!({
            "resourceType": "Provenance",
            "recorded": "2024-05-01T10:00:00Z",
            "target": [{"reference": "Condition/c1"}, {"reference": "Encounter/e1"}],
            "agent": [{"who": {"reference": "Organization/o1"}}]
        });
        let facts = facts("Provenance", &provenance, BASE);
        assert!(facts.references.contains(&("target".into(), "Condition".into(), "c1".into())));
        assert!(facts.references.contains(&("target".into(), "Encounter".into(), "e1".into())));
        assert!(facts.references.contains(&("agent".into(), "Organization".into(), "o1".into())));
        assert!(facts.dates.is_some());
    }
}
