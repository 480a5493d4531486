//! What to ask the previous plan for, decided once per transfer from its CapabilityStatement
//! and the scopes the member granted: `Patient/$everything` when offered, else one search per
//! type of the PDex exchange table.

use baton_fhir::exchange::{EXCHANGE_TYPES, SHARED_TYPES};
use baton_fhir::smart::Scopes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request sequence (followed through its `next` links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The type it fetches (`None` for `$everything`).
    pub resource_type: Option<String>,
    /// The first page, relative to the FHIR base.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub everything: bool,
    pub steps: Vec<Step>,
    /// Types the member's grant does not cover.
    pub not_permitted: Vec<String>,
    /// Types the previous plan does not offer.
    pub not_supported: Vec<String>,
    /// After `$everything`, the Provenance of what arrived is asked for by target, in batches:
    /// Provenance is outside the Patient compartment, so a server's `$everything` may leave it
    /// out. `None`: not asked (not offered, not granted, or the `$everything` carried some).
    #[serde(default)]
    pub provenance_by_target: Option<ProvenanceCursor>,
}

/// How far the Provenance-by-target batches have come: the last record (its `seq` here) whose
/// Provenance was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProvenanceCursor {
    pub after_seq: i64,
}

/// Records named per `Provenance?target=` (the URL stays a few kilobytes long).
pub const PROVENANCE_TARGETS_PER_SEARCH: u32 = 50;

/// What the CapabilityStatement says about one type.
#[derive(Debug, Default, Clone)]
struct Offered {
    search: bool,
    params: Vec<String>,
    revinclude_provenance: bool,
}

fn offered(capability: &Value) -> (std::collections::HashMap<String, Offered>, bool) {
    let mut types = std::collections::HashMap::new();
    let mut everything = false;
    let rests = capability["rest"].as_array().cloned().unwrap_or_default();
    for rest in rests.iter().filter(|r| r["mode"] == "server") {
        let named_everything = |ops: &Value| {
            ops.as_array().is_some_and(|ops| {
                ops.iter().any(|op| {
                    op["name"] == "everything"
                        || op["definition"].as_str().is_some_and(|d| d.ends_with("Patient-everything"))
                })
            })
        };
        everything |= named_everything(&rest["operation"]);
        for resource in rest["resource"].as_array().into_iter().flatten() {
            let Some(t) = resource["type"].as_str() else { continue };
            if t == "Patient" && named_everything(&resource["operation"]) {
                everything = true;
            }
            let search =
                resource["interaction"].as_array().is_some_and(|i| i.iter().any(|i| i["code"] == "search-type"));
            let params = resource["searchParam"]
                .as_array()
                .map(|p| p.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let revinclude_provenance =
                resource["searchRevInclude"].as_array().is_some_and(|r| r.iter().any(|r| r == "Provenance:target"));
            types.insert(t.to_owned(), Offered { search, params, revinclude_provenance });
        }
    }
    (types, everything)
}

/// The CapabilityStatement with `$everything` taken out: what a plan whose `$everything` does
/// not answer (501, 404) is planned from instead.
pub fn without_everything(capability: &Value) -> Value {
    let mut capability = capability.clone();
    let is_everything = |op: &Value| {
        op["name"] == "everything" || op["definition"].as_str().is_some_and(|d| d.ends_with("Patient-everything"))
    };
    for rest in capability["rest"].as_array_mut().into_iter().flatten() {
        if let Some(ops) = rest["operation"].as_array_mut() {
            ops.retain(|op| !is_everything(op));
        }
        for resource in rest["resource"].as_array_mut().into_iter().flatten() {
            if let Some(ops) = resource["operation"].as_array_mut() {
                ops.retain(|op| !is_everything(op));
            }
        }
    }
    capability
}

/// Decides the requests. `start` is the first service date asked for (at least five years
/// back, PDex §pdex-130); `changed_from` (a year back) brings claims and prior authorizations
/// changed since then whatever their service date — a prior authorization still active, or
/// whose status changed in the last 12 months, comes even when it began before `start`
/// (spec §1.5). `since` makes an incremental pull (only what changed since).
pub fn plan(
    capability: &Value,
    granted: &Scopes,
    patient: &str,
    start: &str,
    changed_from: &str,
    since: Option<&str>,
    page_size: u32,
) -> Plan {
    let (types, everything_offered) = offered(capability);
    let permitted: Vec<&str> =
        EXCHANGE_TYPES.iter().copied().filter(|t| granted.can_search(t) || granted.can_read(t)).collect();
    let not_permitted: Vec<String> =
        EXCHANGE_TYPES.iter().filter(|t| !permitted.contains(t)).map(|t| (*t).to_owned()).collect();
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    if everything_offered && !permitted.is_empty() {
        let mut path = format!(
            "Patient/{}/$everything?_type={}&start={start}&_count={page_size}",
            encode(patient),
            encode(&permitted.join(","))
        );
        if let Some(since) = since {
            path.push_str(&format!("&_since={}", encode(since)));
        }
        let mut steps = vec![Step { resource_type: None, path }];
        steps.extend(recently_changed_claims(&types, &permitted, patient, start, changed_from, since, page_size));
        let provenance_searchable =
            types.get("Provenance").is_some_and(|o| o.search && o.params.iter().any(|p| p == "target"));
        let provenance_by_target =
            (permitted.contains(&"Provenance") && provenance_searchable).then(ProvenanceCursor::default);
        return Plan { everything: true, steps, not_permitted, not_supported: vec![], provenance_by_target };
    }

    let mut steps = vec![];
    let mut not_supported = vec![];
    for t in permitted.iter().copied() {
        if SHARED_TYPES.contains(&t) {
            // Directory entries come with the records that refer to them (read afterwards).
            continue;
        }
        let offer = types.get(t);
        if t == "Patient" {
            steps.push(Step { resource_type: Some(t.into()), path: format!("Patient?_id={}", encode(patient)) });
            continue;
        }
        let Some(offer) = offer.filter(|o| o.search) else {
            not_supported.push(t.to_owned());
            continue;
        };
        let patient_param = if offer.params.iter().any(|p| p == "patient") {
            "patient"
        } else if offer.params.iter().any(|p| p == "beneficiary") {
            "beneficiary"
        } else if offer.params.iter().any(|p| p == "subject") {
            "subject"
        } else {
            "patient"
        };
        let mut path = format!("{t}?{patient_param}={}&_count={page_size}", encode(patient));
        if let Some(date) = baton_fhir::index::date_parameters(t).iter().find(|d| offer.params.iter().any(|p| p == *d))
        {
            path.push_str(&format!("&{date}=ge{start}"));
        }
        if offer.revinclude_provenance && t != "Provenance" {
            path.push_str("&_revinclude=Provenance:target");
        }
        if let Some(since) = since {
            path.push_str(&format!("&_lastUpdated=gt{}", encode(since)));
        }
        steps.push(Step { resource_type: Some(t.into()), path });
    }
    steps.extend(recently_changed_claims(&types, &permitted, patient, start, changed_from, since, page_size));
    Plan { everything: false, steps, not_permitted, not_supported, provenance_by_target: None }
}

/// Claims and prior authorizations changed since `changed_from`, whatever their service date
/// (a full pull only: an incremental one asks for every change anyway).
fn recently_changed_claims(
    types: &std::collections::HashMap<String, Offered>,
    permitted: &[&str],
    patient: &str,
    start: &str,
    changed_from: &str,
    since: Option<&str>,
    page_size: u32,
) -> Option<Step> {
    let eob = "ExplanationOfBenefit";
    let offers = |o: &Offered, param: &str| o.params.iter().any(|p| p == param);
    let offer = types.get(eob).filter(|o| o.search && offers(o, "_lastUpdated") && offers(o, "service-date"))?;
    if since.is_some() || !permitted.contains(&eob) {
        return None;
    }
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let patient_param = if offers(offer, "patient") { "patient" } else { "beneficiary" };
    // Only those the main window left out: nothing comes twice.
    let mut path = format!(
        "{eob}?{patient_param}={}&service-date=lt{start}&_lastUpdated=ge{}&_count={page_size}",
        encode(patient),
        encode(changed_from)
    );
    if offer.revinclude_provenance {
        path.push_str("&_revinclude=Provenance:target");
    }
    Some(Step { resource_type: Some(eob.into()), path })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn capability(everything: bool) -> Value {
        let mut patient = json!({"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "_id"}]});
        if everything {
            patient["operation"] = json!([{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
        }
        json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
            patient,
            {"type": "Condition", "interaction": [{"code": "search-type"}], "searchParam": [{"name": "patient"}, {"name": "onset-date"}],
             "searchRevInclude": ["Provenance:target"]},
            {"type": "Coverage", "interaction": [{"code": "search-type"}], "searchParam": [{"name": "beneficiary"}]},
            {"type": "ExplanationOfBenefit", "interaction": [{"code": "search-type"}], "searchParam": [{"name": "patient"}, {"name": "service-date"}, {"name": "_lastUpdated"}]}
        ]}]})
    }

    #[test]
    fn everything_when_offered() {
        let plan = plan(
            &capability(true),
            &Scopes::parse("patient/*.rs"),
            "p 1",
            "2021-11-24",
            "2025-11-24",
            Some("2026-01-01T00:00:00Z"),
            500,
        );
        assert!(plan.everything);
        let path = &plan.steps[0].path;
        assert!(path.starts_with("Patient/p+1/$everything?_type=Patient%2CCoverage%2CExplanationOfBenefit"), "{path}");
        assert!(
            path.contains("start=2021-11-24")
                && path.contains("_count=500")
                && path.contains("_since=2026-01-01T00%3A00%3A00Z")
        );
    }

    #[test]
    fn after_everything_provenance_is_asked_for_by_target_where_that_search_is_offered() {
        let mut offered = capability(true);
        let without = plan(&offered, &Scopes::parse("patient/*.rs"), "p1", "2021-11-24", "2025-11-24", None, 200);
        assert_eq!(without.provenance_by_target, None, "no Provenance search offered");
        offered["rest"][0]["resource"].as_array_mut().unwrap().push(json!({"type": "Provenance",
            "interaction": [{"code": "search-type"}], "searchParam": [{"name": "target", "type": "reference"}]}));
        let with = plan(&offered, &Scopes::parse("patient/*.rs"), "p1", "2021-11-24", "2025-11-24", None, 200);
        assert_eq!(with.provenance_by_target, Some(ProvenanceCursor { after_seq: 0 }));
        let not_granted =
            plan(&offered, &Scopes::parse("patient/Condition.rs"), "p1", "2021-11-24", "2025-11-24", None, 200);
        assert_eq!(not_granted.provenance_by_target, None, "Provenance not granted");
    }

    #[test]
    fn one_search_per_type_otherwise_with_dates_and_provenance_where_offered() {
        let plan =
            plan(&capability(false), &Scopes::parse("patient/*.read"), "p1", "2021-11-24", "2025-11-24", None, 200);
        assert!(!plan.everything);
        let paths: Vec<&str> = plan.steps.iter().map(|s| s.path.as_str()).collect();
        assert!(paths.contains(&"Patient?_id=p1"));
        assert!(
            paths.contains(&"Condition?patient=p1&_count=200&onset-date=ge2021-11-24&_revinclude=Provenance:target")
        );
        assert!(paths.contains(&"Coverage?beneficiary=p1&_count=200"));
        assert!(paths.contains(&"ExplanationOfBenefit?patient=p1&_count=200&service-date=ge2021-11-24"));
        assert!(plan.not_supported.contains(&"Observation".to_owned()));
        assert!(!paths.iter().any(|p| p.starts_with("Practitioner")), "directory entries are read afterwards");
    }

    #[test]
    fn claims_changed_in_the_last_year_come_whatever_their_service_date() {
        let changed = "ExplanationOfBenefit?patient=p1&service-date=lt2021-11-24&_lastUpdated=ge2025-11-24&_count=200";
        for everything in [true, false] {
            let full = plan(
                &capability(everything),
                &Scopes::parse("patient/*.rs"),
                "p1",
                "2021-11-24",
                "2025-11-24",
                None,
                200,
            );
            assert_eq!(full.steps.last().map(|s| s.path.as_str()), Some(changed), "everything: {everything}");
            let since = Some("2026-01-01T00:00:00Z");
            let incremental = plan(
                &capability(everything),
                &Scopes::parse("patient/*.rs"),
                "p1",
                "2021-11-24",
                "2025-11-24",
                since,
                200,
            );
            assert!(
                !incremental.steps.iter().any(|s| s.path == changed),
                "an incremental pull asks for every change anyway"
            );
        }
    }

    #[test]
    fn only_granted_types() {
        let plan = plan(
            &capability(false),
            &Scopes::parse("patient/Condition.read"),
            "p1",
            "2021-11-24",
            "2025-11-24",
            None,
            200,
        );
        assert_eq!(plan.steps.len(), 1);
        assert!(plan.not_permitted.contains(&"ExplanationOfBenefit".to_owned()));
    }
}
