//! Visiting the parts of a resource Baton cares about, wherever they are nested.

use serde_json::Value;

/// Calls `visit(path, reference)` for every `reference` string in `resource`, where `path` is
/// the dotted element path without array indices (e.g. `insurance.coverage`). Contained
/// resources are not entered.
pub fn references(resource: &Value, mut visit: impl FnMut(&str, &str)) {
    let mut path = String::new();
    walk_references(resource, &mut path, &mut visit, true);
}

fn walk_references(value: &Value, path: &mut String, visit: &mut impl FnMut(&str, &str), top: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if top && key == "contained" {
                    continue;
                }
                if key == "reference" {
                    if let Value::String(reference) = child {
                        visit(path, reference);
                    }
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk_references(child, path, visit, false);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_references(item, path, visit, false);
            }
        }
        _ => {}
    }
}

/// Mutable variant of [`references`]: `rewrite(path, reference)` may return a replacement.
pub fn rewrite_references(resource: &mut Value, mut rewrite: impl FnMut(&str, &str) -> Option<String>) {
    let mut path = String::new();
    rewrite_inner(resource, &mut path, &mut rewrite);
}

fn rewrite_inner(value: &mut Value, path: &mut String, rewrite: &mut impl FnMut(&str, &str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference" {
                    if let Value::String(reference) = child
                        && let Some(new) = rewrite(path, reference)
                    {
                        *reference = new;
                    }
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                rewrite_inner(child, path, rewrite);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_inner(item, path, rewrite);
            }
        }
        _ => {}
    }
}

/// Removes every Reference whose `reference` string `masked` picks, wherever it is nested
/// (contained resources included): an item of a list (Provenance targets, participants…) is
/// dropped; a single Reference becomes a masked data-absent Reference, its `display` gone too
/// (a name can say as much as an id). Returns how many were removed.
pub fn mask_references(resource: &mut Value, mut masked: impl FnMut(&str) -> bool) -> usize {
    fn picked(value: &Value, masked: &mut impl FnMut(&str) -> bool) -> bool {
        value.get("reference").and_then(Value::as_str).is_some_and(|r| masked(r))
    }
    fn walk(value: &mut Value, masked: &mut impl FnMut(&str) -> bool, removed: &mut usize) {
        match value {
            Value::Object(map) => {
                for child in map.values_mut() {
                    if picked(child, masked) {
                        *child = serde_json::json!({"extension": [{
                            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                            "valueCode": "masked"
                        }]});
                        *removed += 1;
                    } else {
                        walk(child, masked, removed);
                    }
                }
            }
            Value::Array(items) => {
                let before = items.len();
                items.retain(|item| !picked(item, masked));
                *removed += before - items.len();
                for item in items.iter_mut() {
                    walk(item, masked, removed);
                }
            }
            _ => {}
        }
    }
    let mut removed = 0;
    walk(resource, &mut masked, &mut removed);
    removed
}

/// Calls `visit(system, code, display)` for every Coding (an object with `code`, and usually
/// `system`) anywhere in `value`, including `meta.security` and contained resources.
pub fn codings(value: &Value, visit: &mut impl FnMut(&str, &str, Option<&str>)) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(code)) = map.get("code") {
                let system = map.get("system").and_then(Value::as_str).unwrap_or("");
                visit(system, code, map.get("display").and_then(Value::as_str));
            }
            for child in map.values() {
                if child.is_object() || child.is_array() {
                    codings(child, visit);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                codings(item, visit);
            }
        }
        _ => {}
    }
}

/// The values at a dotted `path` (arrays are flattened at every step).
pub fn at_path<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for step in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(child) => next.push(child),
                None => {}
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_nested_references_with_their_paths() {
        let eob = json!({
            "resourceType": "ExplanationOfBenefit",
            "patient": {"reference": "Patient/1"},
            "insurance": [{"coverage": {"reference": "Coverage/c1"}}, {"coverage": {"reference": "Coverage/c2"}}],
            "careTeam": [{"provider": {"reference": "Practitioner/p1"}}],
            "contained": [{"resourceType": "Organization", "partOf": {"reference": "Organization/x"}}]
        });
        let mut found = Vec::new();
        references(&eob, |path, reference| found.push(format!("{path}={reference}")));
        found.sort();
        assert_eq!(
            found,
            [
                "careTeam.provider=Practitioner/p1",
                "insurance.coverage=Coverage/c1",
                "insurance.coverage=Coverage/c2",
                "patient=Patient/1"
            ]
        );
    }

    #[test]
    fn rewrites_in_place() {
        let mut resource = json!({"subject": {"reference": "Patient/old"}, "note": [{"text": "keep"}]});
        rewrite_references(&mut resource, |_, r| (r == "Patient/old").then(|| "Patient/new".to_owned()));
        assert_eq!(resource, json!({"subject": {"reference": "Patient/new"}, "note": [{"text": "keep"}]}));
    }

    #[test]
    fn masks_references_in_lists_and_single_elements() {
        let mut provenance = json!({"resourceType": "Provenance",
            "target": [{"reference": "Condition/a"}, {"reference": "Condition/b"}],
            "agent": [{"who": {"reference": "Organization/gone", "display": "Gone Clinic"}}],
            "contained": [{"resourceType": "Organization", "partOf": {"reference": "Organization/gone"}}]});
        let removed = mask_references(&mut provenance, |r| r == "Condition/a" || r == "Organization/gone");
        assert_eq!(removed, 3);
        assert_eq!(provenance["target"], json!([{"reference": "Condition/b"}]));
        assert_eq!(provenance["agent"][0]["who"]["extension"][0]["valueCode"], "masked");
        assert_eq!(provenance["contained"][0]["partOf"]["extension"][0]["valueCode"], "masked");
        assert!(!provenance.to_string().contains("Gone Clinic"), "display of a withheld reference goes too");
    }

    #[test]
    fn visits_codings_everywhere() {
        let condition = json!({
            "meta": {"security": [{"system": "s", "code": "R"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.9"}]},
            "status": "active"
        });
        let mut found = Vec::new();
        codings(&condition, &mut |s, c, _| found.push(format!("{s}|{c}")));
        found.sort();
        assert_eq!(found, ["http://hl7.org/fhir/sid/icd-10-cm|F32.9", "s|R"]);

        let claim = json!({
            "item": [{"productOrService": {"coding": [
                {"code": "42", "display": "sertraline 50 mg", "system": 7},
                {"display": "no code here", "system": "s"}
            ]}}]
        });
        let mut found = Vec::new();
        codings(&claim, &mut |s, c, d| found.push((s.to_owned(), c.to_owned(), d.map(str::to_owned))));
        assert_eq!(found, [(String::new(), "42".to_owned(), Some("sertraline 50 mg".to_owned()))]);
    }

    #[test]
    fn paths_flatten_arrays() {
        let eob = json!({"item": [{"servicedDate": "2020-01-01"}, {"servicedDate": "2020-02-01"}]});
        assert_eq!(at_path(&eob, "item.servicedDate"), [&json!("2020-01-01"), &json!("2020-02-01")]);
        assert!(at_path(&eob, "item.nothing").is_empty());
    }
}
