//! The PDex payer-to-payer exchange table (PDex 2.2.0 §pdex-210; spec digest §1.5): which
//! resource types move from an old plan to a new one, and how members see them grouped.

use serde_json::Value;

/// Every resource type of the PDex exchange table, in the order a per-type pull requests them.
pub const EXCHANGE_TYPES: &[&str] = &[
    "Patient",
    "Coverage",
    "ExplanationOfBenefit",
    "Encounter",
    "Condition",
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationDispense",
    "Medication",
    "Immunization",
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Goal",
    "Device",
    "DocumentReference",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Provenance",
];

/// Types that are not about one patient (directory-like): they have no patient compartment.
pub const SHARED_TYPES: &[&str] = &["Organization", "Practitioner", "PractitionerRole", "Location", "Medication"];

pub fn is_exchange_type(resource_type: &str) -> bool {
    EXCHANGE_TYPES.contains(&resource_type)
}

/// Whether resources of this type belong to a patient's compartment.
pub fn is_compartment_type(resource_type: &str) -> bool {
    is_exchange_type(resource_type) && !SHARED_TYPES.contains(&resource_type)
}

/// The PDex Prior Authorization profile (an ExplanationOfBenefit with `use` preauthorization).
pub const PDEX_PRIOR_AUTHORIZATION: &str =
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization";

/// How a member thinks of a record (the vocabulary's; what falls in which is decided here).
pub use baton_vocab::Category;

/// The resource types whose records fall in `category` — the inverse of [`category_of`], kept
/// beside it (an ExplanationOfBenefit is a claim or a prior authorization, by its content).
pub fn resource_types(category: Category) -> &'static [&'static str] {
    match category {
        Category::Claims | Category::PriorAuthorizations => &["ExplanationOfBenefit"],
        Category::Coverage => &["Coverage"],
        Category::Conditions => &["Condition"],
        Category::Medications => &["MedicationRequest", "MedicationDispense"],
        Category::Visits => &["Encounter"],
        Category::Labs => &["Observation", "DiagnosticReport"],
        Category::Immunizations => &["Immunization"],
        Category::Procedures => &["Procedure", "Device"],
        Category::Allergies => &["AllergyIntolerance"],
        Category::Documents => &["DocumentReference"],
        Category::CarePlans => &["CarePlan", "CareTeam", "Goal"],
        // Everything else; the common ones.
        Category::Supporting => &["Provenance", "Organization", "Practitioner", "Location", "Patient"],
    }
}

/// The resource types whose resources are a member's records (every category but
/// [`Category::Supporting`]): what "records" counts on every screen.
pub fn record_types() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Category::RECORDS.into_iter().flat_map(resource_types).copied().collect();
    types.dedup();
    types
}

/// The category of a resource (an ExplanationOfBenefit is a claim or a prior authorization).
pub fn category_of(resource_type: &str, resource: &Value) -> Category {
    match resource_type {
        "ExplanationOfBenefit" if is_prior_authorization(resource) => Category::PriorAuthorizations,
        "ExplanationOfBenefit" => Category::Claims,
        "Coverage" => Category::Coverage,
        "Condition" => Category::Conditions,
        "MedicationRequest" | "MedicationDispense" => Category::Medications,
        "Encounter" => Category::Visits,
        "Observation" | "DiagnosticReport" => Category::Labs,
        "Immunization" => Category::Immunizations,
        "Procedure" | "Device" => Category::Procedures,
        "AllergyIntolerance" => Category::Allergies,
        "DocumentReference" => Category::Documents,
        "CarePlan" | "CareTeam" | "Goal" => Category::CarePlans,
        _ => Category::Supporting,
    }
}

/// A PDex prior authorization: `use` is `preauthorization`, or the PDex profile is claimed.
pub fn is_prior_authorization(eob: &Value) -> bool {
    eob.get("use").and_then(Value::as_str) == Some("preauthorization")
        || eob
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().filter_map(Value::as_str).any(|p| p.starts_with(PDEX_PRIOR_AUTHORIZATION)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resource_types_are_the_inverse_of_category_of() {
        for category in Category::RECORDS.into_iter().chain([Category::Supporting]) {
            for t in resource_types(category) {
                let resource = if category == Category::PriorAuthorizations {
                    json!({"use": "preauthorization"})
                } else {
                    json!({})
                };
                assert_eq!(category_of(t, &resource), category, "{t}");
            }
        }
        // `Supporting` is everything else; every record category lists all of its types.
        for t in EXCHANGE_TYPES {
            let category = category_of(t, &json!({}));
            if category != Category::Supporting {
                assert!(resource_types(category).contains(t), "{t} is missing from {category:?}");
            }
        }
    }

    #[test]
    fn both_eob_kinds_are_told_apart() {
        let claim = json!({"resourceType": "ExplanationOfBenefit", "use": "claim"});
        let pa = json!({"resourceType": "ExplanationOfBenefit", "use": "preauthorization"});
        let pa_by_profile = json!({"meta": {"profile": [format!("{PDEX_PRIOR_AUTHORIZATION}|2.2.0")]}});
        assert_eq!(category_of("ExplanationOfBenefit", &claim), Category::Claims);
        assert_eq!(category_of("ExplanationOfBenefit", &pa), Category::PriorAuthorizations);
        assert_eq!(category_of("ExplanationOfBenefit", &pa_by_profile), Category::PriorAuthorizations);
    }

    #[test]
    fn compartment_and_shared_types() {
        assert!(is_compartment_type("Condition"));
        assert!(is_compartment_type("Patient"));
        assert!(!is_compartment_type("Practitioner"));
        assert!(!is_compartment_type("Binary"));
        for category in Category::RECORDS {
            assert_eq!(Category::from_key(category.key()), Some(category));
        }
    }
}
