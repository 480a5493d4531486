//! FHIR R4 handling for Baton, independent of storage and HTTP.
//!
//! Resources stay `serde_json::Value`s (so elements Baton does not know — extensions, newer
//! profiles — pass through untouched); this crate reads what Baton needs from them:
//!
//! - [`reference`]: parsing `Type/id`, absolute and contained references;
//! - [`walk`]: visiting every reference and coding inside a resource;
//! - [`index`]: what searches need (patient compartment, service dates, identifiers, references);
//! - [`sensitivity`]: security labels and the sensitive-code classifier (with sources);
//! - [`datetime`]: FHIR date/dateTime/instant values as time ranges;
//! - [`exchange`]: the PDex exchange table (which types move between plans);
//! - [`bundle`], [`outcome`]: building searchset Bundles and OperationOutcomes;
//! - [`smart`]: SMART App Launch scopes (v1 and v2).

pub mod bundle;
pub mod datetime;
pub mod exchange;
pub mod financial;
pub mod index;
pub mod outcome;
pub mod reference;
pub mod sensitivity;
pub mod smart;
pub mod walk;

use serde_json::Value;

/// `resourceType` of a resource, if it has one.
pub fn resource_type(resource: &Value) -> Option<&str> {
    resource.get("resourceType")?.as_str()
}

/// Logical `id` of a resource, if it has one.
pub fn resource_id(resource: &Value) -> Option<&str> {
    resource.get("id")?.as_str()
}

/// Whether `id` is a valid FHIR logical id: 1–64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `name` looks like a FHIR resource type name (`UpperCamelCase` letters).
pub fn is_resource_type_name(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_fhir_rule() {
        assert!(is_valid_id("a-1.B"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id("slash/inside"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }

    #[test]
    fn type_names() {
        assert!(is_resource_type_name("ExplanationOfBenefit"));
        assert!(!is_resource_type_name("explanationOfBenefit"));
        assert!(!is_resource_type_name("Patient/1"));
    }
}
