use std::collections::{HashMap, HashSet};

use baton_fhir::exchange::{Category, category_of};
use baton_fhir::reference::Reference;
use baton_fhir::{sensitivity, walk};
use serde_json::Value;

use super::*;

fn payer() -> Payer {
    Payer {
        organization_id: "riverbend".into(),
        name: "Riverbend Health Plan".into(),
        identifier_system: "https://riverbend.example".into(),
    }
}

fn natural(member: &Member) -> Vec<Value> {
    record(member, &Options::new(payer())).collect()
}

fn member(name: &str) -> Member {
    demo_members("rb").into_iter().find(|m| m.given == name).unwrap()
}

#[test]
fn same_seed_same_record() {
    let maria = member("Maria");
    assert_eq!(natural(&maria), natural(&maria));
    let mut other = Options::new(payer());
    other.seed = 7;
    assert_ne!(natural(&maria), record(&maria, &other).collect::<Vec<_>>());
}

#[test]
fn a_record_has_five_years_of_every_exchanged_kind() {
    let james = member("James");
    let resources = natural(&james);
    let types: HashSet<&str> = resources.iter().filter_map(|r| r["resourceType"].as_str()).collect();
    for expected in [
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
        "Immunization",
        "AllergyIntolerance",
        "CarePlan",
        "Goal",
        "DocumentReference",
        "Organization",
        "Practitioner",
        "Location",
        "Provenance",
    ] {
        assert!(types.contains(expected), "{expected} missing");
    }
    let profiles: HashSet<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "ExplanationOfBenefit")
        .filter_map(|r| r["meta"]["profile"][0].as_str().map(str::to_owned))
        .collect();
    for kind in ["Inpatient-Institutional", "Outpatient-Institutional", "Professional-NonClinician", "Oral", "Pharmacy"]
    {
        let basis =
            format!("http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-{kind}-Basis");
        assert!(profiles.contains(&basis), "{basis} missing from {profiles:?}");
    }
    assert!(profiles.contains("http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"));
    let claims = resources.iter().filter(|r| {
        category_of("ExplanationOfBenefit", r) == Category::Claims && r["resourceType"] == "ExplanationOfBenefit"
    });
    assert!(
        claims.clone().all(|c| c.get("total").is_none() && c.get("payment").is_none()),
        "Basis claims carry no amounts"
    );

    let years: HashSet<i64> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Encounter")
        .filter_map(|r| r["period"]["start"].as_str()?.get(..4)?.parse().ok())
        .collect();
    assert!(years.len() >= 6, "at least 5 full years of visits: {years:?}");
    assert!(resources.len() > 200, "{} resources", resources.len());
}

#[test]
fn every_reference_resolves_inside_the_record() {
    for member in demo_members("rb") {
        let resources = natural(&member);
        let ids: HashSet<String> = resources
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()))
            .collect();
        assert_eq!(ids.len(), resources.len(), "ids are unique");
        for resource in &resources {
            assert!(baton_fhir::is_valid_id(resource["id"].as_str().unwrap()));
            walk::references(resource, |path, reference| {
                let (t, id) =
                    Reference::parse(reference).type_and_id().unwrap_or_else(|| panic!("{path}: {reference}"));
                assert!(ids.contains(&format!("{t}/{id}")), "{}: dangling {reference}", resource["id"]);
            });
        }
    }
}

#[test]
fn sensitive_care_is_sometimes_labelled_and_always_classifiable() {
    let maria = natural(&member("Maria"));
    let sensitive: Vec<&Value> = maria.iter().filter(|r| sensitivity::is_sensitive(r)).collect();
    let labelled = sensitive.iter().filter(|r| !sensitivity::label_reasons(r).is_empty()).count();
    let unlabelled = sensitive.len() - labelled;
    assert!(labelled > 10 && unlabelled > 10, "labelled {labelled}, unlabelled {unlabelled}");
    let kinds: HashSet<_> = sensitive.iter().flat_map(|r| sensitivity::assess(r)).map(|r| r.kind).collect();
    assert!(kinds.contains(&sensitivity::Kind::BehavioralHealth));
    assert!(kinds.contains(&sensitivity::Kind::SubstanceUse));

    // Nothing from her sensitive care slips through unclassified.
    let markers = ["F32.1", "F11.20", "buprenorphine", "sertraline", "90834", "H0020", "44261-6", "H0010", "H0035"];
    for resource in &maria {
        if matches!(resource["resourceType"].as_str(), Some("Provenance" | "Organization" | "Practitioner")) {
            continue;
        }
        let text = resource.to_string();
        if markers.iter().any(|m| text.contains(m)) {
            assert!(sensitivity::is_sensitive(resource), "not caught: {text}");
        }
    }

    let james = natural(&member("James"));
    assert!(james.iter().all(|r| !sensitivity::is_sensitive(r)), "James has no sensitive care");
    let ana = natural(&member("Ana"));
    assert!(
        ana.iter()
            .filter(|r| sensitivity::is_sensitive(r))
            .all(|r| !sensitivity::label_reasons(r).is_empty() || r["resourceType"] == "Provenance")
    );
}

#[test]
fn the_size_knob_is_exact_and_ids_stay_unique() {
    let mut options = Options::new(payer());
    options.target_resources = 5_000;
    let resources: Vec<Value> = record(&numbered_member("bench", 1, 1), &options).collect();
    assert_eq!(resources.len(), 5_000);
    let mut seen = HashMap::new();
    for r in &resources {
        let key = format!("{}/{}", r["resourceType"], r["id"]);
        assert!(seen.insert(key.clone(), ()).is_none(), "duplicate {key}");
    }
}

#[test]
fn financial_claims_carry_amounts() {
    let mut options = Options::new(payer());
    options.financial_claims = true;
    let resources: Vec<Value> = record(&member("James"), &options).collect();
    let claim = resources.iter().find(|r| r["resourceType"] == "ExplanationOfBenefit" && r["use"] == "claim").unwrap();
    assert!(claim["total"].is_array() && claim["payment"]["amount"]["value"].is_number());
    assert!(!claim["meta"]["profile"][0].as_str().unwrap().ends_with("-Basis"));
}

#[test]
fn random_ids_are_uuids_that_still_resolve_and_repeat_with_the_seed() {
    let maria = member("Maria");
    let mut options = Options::new(payer());
    options.ids = IdStyle::Random;
    let resources: Vec<Value> = record(&maria, &options).collect();
    assert_eq!(resources.len(), natural(&maria).len(), "the same record, only its ids differ");
    assert_eq!(resources, record(&maria, &options).collect::<Vec<_>>(), "same seed, same ids");

    let ids: HashSet<String> = resources
        .iter()
        .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(ids.len(), resources.len(), "ids are unique");
    let care = resources.iter().filter(|r| r["resourceType"] == "Condition" || r["resourceType"] == "Provenance");
    let mut uuids = 0;
    for resource in care {
        let id = resource["id"].as_str().unwrap();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
        assert_eq!(&id[14..15], "4", "version 4 layout: {id}");
        assert!(baton_fhir::is_valid_id(id));
        uuids += 1;
    }
    assert!(uuids > 20);
    // Neighbours in the record are not neighbours in key order.
    let conditions: Vec<&str> =
        resources.iter().filter(|r| r["resourceType"] == "Condition").map(|r| r["id"].as_str().unwrap()).collect();
    assert!(conditions.windows(2).any(|w| w[0] > w[1]) && conditions.windows(2).any(|w| w[0] < w[1]));
    for resource in &resources {
        walk::references(resource, |path, reference| {
            let (t, id) = Reference::parse(reference).type_and_id().unwrap_or_else(|| panic!("{path}: {reference}"));
            assert!(ids.contains(&format!("{t}/{id}")), "{}: dangling {reference}", resource["id"]);
        });
    }

    let mut other = options.clone();
    other.seed = 7;
    let first = |o: &Options| record(&maria, o).find(|r| r["resourceType"] == "Condition").unwrap()["id"].clone();
    assert_ne!(first(&options), first(&other), "another seed, other ids");
}

#[test]
fn nothing_is_dated_after_the_day_the_record_runs_to() {
    fn dates<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(text) if is_date(text) => out.push(text),
            Value::Array(items) => items.iter().for_each(|v| dates(v, out)),
            Value::Object(fields) => fields.values().for_each(|v| dates(v, out)),
            _ => {}
        }
    }
    fn is_date(text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes.len() >= 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| bytes[i].is_ascii_digit())
    }
    let options = Options::new(payer());
    let as_of =
        format!("{:04}-{:02}-{:02}", options.as_of.year(), u8::from(options.as_of.month()), options.as_of.day());
    for member in demo_members("rb") {
        let mut target = options.clone();
        target.target_resources = 3_000;
        for resources in [record(&member, &options).collect::<Vec<_>>(), record(&member, &target).collect()] {
            let mut found = vec![];
            resources.iter().for_each(|r| dates(r, &mut found));
            assert!(found.len() > 100);
            let late: Vec<&&str> = found.iter().filter(|d| d[..10] > *as_of).collect();
            assert!(late.is_empty(), "{}: {} dates after {as_of}, e.g. {:?}", member.given, late.len(), late.first());
        }
    }
}
