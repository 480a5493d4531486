//! A record in a few plain words, for lists staff read ("Office visit", "Type 2 diabetes",
//! "Claim — Riverside Clinic"): the display text a resource carries, never invented.

use serde_json::Value;

/// What a resource is about, from its own codes and names.
pub fn title(resource: &Value) -> String {
    let kind = resource.get("resourceType").and_then(Value::as_str).unwrap_or("Resource");
    let found = match kind {
        "ExplanationOfBenefit" => eob_title(resource),
        "Condition" | "Procedure" | "AllergyIntolerance" | "Observation" | "DiagnosticReport" => {
            concept(resource.get("code"))
        }
        "MedicationRequest" | "MedicationDispense" => concept(resource.get("medicationCodeableConcept"))
            .or_else(|| display_of(resource.get("medicationReference"))),
        "Immunization" => concept(resource.get("vaccineCode")),
        "Encounter" => resource
            .get("type")
            .and_then(Value::as_array)
            .and_then(|types| types.iter().find_map(|t| concept(Some(t))))
            .or_else(|| resource.pointer("/class/display").and_then(Value::as_str).map(str::to_owned)),
        "DocumentReference" => resource
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| concept(resource.get("type"))),
        "Coverage" => resource
            .get("payor")
            .and_then(Value::as_array)
            .and_then(|p| p.iter().find_map(|p| display_of(Some(p))))
            .or_else(|| concept(resource.get("type"))),
        "CarePlan" | "Goal" => resource
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| concept(resource.get("description"))),
        _ => None,
    };
    found.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| kind.to_owned())
}

fn eob_title(eob: &Value) -> Option<String> {
    let kind = concept(eob.get("type"));
    let provider = display_of(eob.get("provider")).or_else(|| display_of(eob.get("facility")));
    match (kind, provider) {
        (Some(kind), Some(provider)) => Some(format!("{kind} — {provider}")),
        (kind, provider) => kind.or(provider),
    }
}

/// `CodeableConcept.text`, else the first coding's display, else its code.
fn concept(value: Option<&Value>) -> Option<String> {
    let value = value?;
    if let Some(text) = value.get("text").and_then(Value::as_str) {
        return Some(text.to_owned());
    }
    let codings = value.get("coding").and_then(Value::as_array)?;
    codings
        .iter()
        .find_map(|c| c.get("display").and_then(Value::as_str))
        .or_else(|| codings.iter().find_map(|c| c.get("code").and_then(Value::as_str)))
        .map(str::to_owned)
}

fn display_of(reference: Option<&Value>) -> Option<String> {
    reference?.get("display").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn titles_come_from_the_resource_own_words() {
        assert_eq!(
            title(
                &json!({"resourceType": "Condition", "code": {"coding": [{"code": "E11.9", "display": "Type 2 diabetes"}]}})
            ),
            "Type 2 diabetes"
        );
        assert_eq!(
            title(&json!({"resourceType": "ExplanationOfBenefit", "type": {"text": "Professional claim"},
                "provider": {"display": "Riverside Clinic"}})),
            "Professional claim — Riverside Clinic"
        );
        assert_eq!(
            title(&json!({"resourceType": "Immunization", "vaccineCode": {"coding": [{"code": "140"}]}})),
            "140"
        );
        assert_eq!(title(&json!({"resourceType": "Encounter"})), "Encounter", "nothing invented");
    }
}
