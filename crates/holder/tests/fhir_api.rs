//! The Patient Access FHIR API: paging, compartments, scopes, sensitive exclusion, errors.

#[macro_use]
mod support;

use std::collections::HashSet;

use baton_fhir::sensitivity;
use baton_store::testing::{on_postgres, on_sqlite};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

/// Follows `next` links from `first`; returns every entry and the first page's total.
async fn all_pages(t: &TestHolder, token: &str, first: &str) -> (Vec<Value>, u64, usize) {
    let mut entries = vec![];
    let mut url = first.to_owned();
    let mut total = None;
    let mut pages = 0;
    loop {
        let (status, bundle) = fhir_get(t, token, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {bundle}");
        assert_eq!(bundle["type"], "searchset");
        pages += 1;
        let this_total = bundle["total"].as_u64().unwrap();
        assert_eq!(*total.get_or_insert(this_total), this_total, "total is stable across pages");
        entries.extend(bundle["entry"].as_array().cloned().unwrap_or_default());
        match bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(next) => {
                let next = next["url"].as_str().unwrap();
                assert!(next.starts_with(&t.fhir), "next stays on this server: {next}");
                url = next.to_owned();
            }
            None => break,
        }
        assert!(pages < 1000, "paging must end");
    }
    (entries, total.unwrap_or(0), pages)
}

fn matches(entries: &[Value]) -> Vec<&Value> {
    entries.iter().filter(|e| e["search"]["mode"] == "match").map(|e| &e["resource"]).collect()
}

fn keys(resources: &[&Value]) -> Vec<String> {
    resources.iter().map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())).collect()
}

async fn paging_returns_every_resource_exactly_once_on(t: TestHolder) {
    let token = tokens_for(&t, "james", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    for search in
        ["ExplanationOfBenefit?_count=7", "Observation?patient=Patient/rb-james&_count=13", "Condition?_count=1"]
    {
        let (entries, total, pages) = all_pages(&t, &token, search).await;
        let found = keys(&matches(&entries));
        let unique: HashSet<&String> = found.iter().collect();
        assert_eq!(found.len() as u64, total, "{search}: count equals total");
        assert_eq!(unique.len(), found.len(), "{search}: nothing twice");
        assert!(pages > 1, "{search} spans pages");
    }
    // While a search is being paged, new records do not shift its pages.
    let (status, first) = fhir_get(&t, &token, "Encounter?_count=10").await;
    assert_eq!(status, StatusCode::OK);
    let total = first["total"].as_u64().unwrap();
    let extra = baton_records::prepare(
        serde_json::json!({"resourceType": "Encounter", "id": "late-1", "status": "finished",
            "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{}", t.james)}}),
        &t.fhir,
        None,
        None,
    )
    .unwrap();
    baton_records::put(&t.store, vec![extra]).await.unwrap();
    let next = first["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rest, rest_total, _) = all_pages(&t, &token, &next).await;
    assert_eq!(rest_total, total);
    assert_eq!(matches(&rest).len() as u64 + 10, total);
    assert!(!keys(&matches(&rest)).contains(&"Encounter/late-1".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_resource_exactly_once_sqlite() {
    on_sqlite(|store| async move { paging_returns_every_resource_exactly_once_on(start(store).await).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_resource_exactly_once_postgres() {
    on_postgres(|store| async move { paging_returns_every_resource_exactly_once_on(start(store).await).await }).await;
}

holder_test!(everything_pages_the_compartment_then_the_directory, |t| {
    let token = tokens_for(&t, "james", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    let (entries, total, pages) = all_pages(&t, &token, &format!("Patient/{}/$everything?_count=50", t.james)).await;
    let found = matches(&entries);
    assert_eq!(found.len() as u64, total);
    assert!(pages > 2);
    let types: HashSet<&str> = found.iter().filter_map(|r| r["resourceType"].as_str()).collect();
    for expected in ["Patient", "Coverage", "ExplanationOfBenefit", "Provenance", "Practitioner", "Organization"] {
        assert!(types.contains(expected), "{expected}");
    }
    let unique: HashSet<String> = keys(&found).into_iter().collect();
    assert_eq!(unique.len() as u64, total);
    assert!(found.iter().all(|r| r["resourceType"] != "Patient" || r["id"] == t.james.as_str()), "no other patient");

    // _type and a care window narrow it.
    let (entries, _, _) =
        all_pages(&t, &token, &format!("Patient/{}/$everything?_type=Condition,Encounter&start=2025-01-01", t.james))
            .await;
    let narrowed = matches(&entries);
    assert!(!narrowed.is_empty());
    for resource in narrowed {
        let t = resource["resourceType"].as_str().unwrap();
        assert!(t == "Condition" || t == "Encounter");
        if t == "Encounter" {
            assert!(resource["period"]["end"].as_str().unwrap() >= "2025-01-01");
        }
    }
    let (status, _) =
        fhir_get(&t, &token, &format!("Patient/{}/$everything?start=2025-01-01&end=2024-01-01", t.james)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        fhir_get(&t, &token, &format!("Patient/{}/$everything?_since=2020-01-01T00:00:00Z&_type=Condition", t.james))
            .await;
    assert_eq!(status, StatusCode::OK);
});

holder_test!(a_token_for_one_member_never_reaches_another, |t| {
    let maria = tokens_for(&t, "maria", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    let james = tokens_for(&t, "james", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    // Something of James's to aim at.
    let (_, bundle) = fhir_get(&t, &james, "ExplanationOfBenefit?_count=1").await;
    let eob_id = bundle["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();

    // read
    assert_eq!(fhir_get(&t, &maria, &format!("Patient/{}", t.james)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fhir_get(&t, &maria, &format!("ExplanationOfBenefit/{eob_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fhir_get(&t, &james, &format!("ExplanationOfBenefit/{eob_id}")).await.0, StatusCode::OK);
    // search
    let (status, outcome) = fhir_get(&t, &maria, &format!("ExplanationOfBenefit?patient={}", t.james)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(fhir_get(&t, &maria, &format!("Patient?_id={}", t.james)).await.0, StatusCode::FORBIDDEN);
    let (_, own) = fhir_get(&t, &maria, &format!("ExplanationOfBenefit?_id={eob_id}")).await;
    assert_eq!(own["total"], 0, "James's claim is not in Maria's compartment");
    // _include and _revinclude only ever bring Maria's things
    let (entries, _, _) = all_pages(
        &t,
        &maria,
        "ExplanationOfBenefit?_include=ExplanationOfBenefit:patient&_include=ExplanationOfBenefit:coverage&_revinclude=Provenance:target&_count=50",
    )
    .await;
    for entry in &entries {
        let text = entry["resource"].to_string();
        assert!(!text.contains(&t.james), "James's data in Maria's results: {text}");
    }
    assert!(entries.iter().any(|e| e["search"]["mode"] == "include" && e["resource"]["resourceType"] == "Coverage"));
    assert!(entries.iter().any(|e| e["search"]["mode"] == "include" && e["resource"]["resourceType"] == "Provenance"));
    // $everything
    assert_eq!(fhir_get(&t, &maria, &format!("Patient/{}/$everything", t.james)).await.0, StatusCode::FORBIDDEN);
});

holder_test!(scopes_are_enforced_per_type, |t| {
    let token = tokens_for(&t, "james", "launch/patient patient/Condition.read", "include").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fhir_get(&t, &token, "Condition").await.0, StatusCode::OK);
    assert_eq!(fhir_get(&t, &token, "Observation").await.0, StatusCode::FORBIDDEN);
    assert_eq!(fhir_get(&t, &token, &format!("Patient/{}", t.james)).await.0, StatusCode::FORBIDDEN);
    let (entries, _, _) = all_pages(&t, &token, &format!("Patient/{}/$everything", t.james)).await;
    assert!(matches(&entries).iter().all(|r| r["resourceType"] == "Condition"), "only what the scopes allow");
    // _revinclude brings no Provenance without a scope for it.
    let (_, bundle) = fhir_get(&t, &token, "Condition?_revinclude=Provenance:target").await;
    assert!(bundle["entry"].as_array().unwrap().iter().all(|e| e["resource"]["resourceType"] == "Condition"));

    let v2 = tokens_for(&t, "james", "launch/patient patient/Observation.s", "include").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fhir_get(&t, &v2, "Observation?_count=1").await.0, StatusCode::OK);
    let (_, bundle) = fhir_get(&t, &v2, "Observation?_count=1").await;
    let id = bundle["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        fhir_get(&t, &v2, &format!("Observation/{id}")).await.0,
        StatusCode::FORBIDDEN,
        "v2 s without r: no read"
    );
});

fn sensitive(resources: &[&Value]) -> Vec<String> {
    resources
        .iter()
        .filter(|r| sensitivity::is_sensitive(r))
        .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
        .collect()
}

holder_test!(sensitive_records_are_excluded_in_every_path_when_the_member_says_so, |t| {
    let excluded = tokens_for(&t, "maria", ALL_SCOPES, "exclude").await["access_token"].as_str().unwrap().to_owned();
    let included = tokens_for(&t, "maria", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();

    // With "include" the sensitive records are there — labelled ones and unlabelled ones.
    let (all, _, _) = all_pages(&t, &included, &format!("Patient/{}/$everything?_count=200", t.maria)).await;
    let all = matches(&all);
    let sensitive_ids = sensitive(&all);
    let labelled = all.iter().filter(|r| !sensitivity::label_reasons(r).is_empty()).count();
    let unlabelled =
        all.iter().filter(|r| sensitivity::label_reasons(r).is_empty() && sensitivity::is_sensitive(r)).count();
    assert!(labelled > 0 && unlabelled > 0, "labelled {labelled}, unlabelled {unlabelled}");

    // $everything
    let (entries, _, _) = all_pages(&t, &excluded, &format!("Patient/{}/$everything?_count=200", t.maria)).await;
    assert!(sensitive(&matches(&entries)).is_empty());
    assert!(matches(&entries).len() < all.len());
    // search, with _include and _revinclude
    for search in [
        "Condition",
        "ExplanationOfBenefit?_include=ExplanationOfBenefit:provider&_revinclude=Provenance:target&_count=100",
        "MedicationRequest?_include=MedicationRequest:requester",
        "Encounter?_revinclude=Provenance:target&_count=100",
        "Observation?_count=100",
    ] {
        let (entries, _, _) = all_pages(&t, &excluded, search).await;
        let resources: Vec<&Value> = entries.iter().map(|e| &e["resource"]).collect();
        assert!(sensitive(&resources).is_empty(), "{search}: {:?}", sensitive(&resources));
        // A Provenance never points at a hidden record; a practitioner seen only in sensitive
        // care (the behavioral-health clinic's) is not revealed either.
        for resource in &resources {
            let text = resource.to_string();
            for id in &sensitive_ids {
                let reference = id.replace('"', "");
                assert!(
                    !text.contains(&format!("\"{reference}\"")),
                    "{search}: {reference} leaked via {}",
                    resource["id"]
                );
            }
            assert!(!text.contains("Practitioner/dr-ramos") || resource["resourceType"] == "Practitioner");
        }
        assert!(!resources.iter().any(|r| r["id"] == "dr-ramos"), "{search}");
    }
    // read
    let hidden = sensitive_ids.iter().find(|id| id.contains("Condition")).unwrap().replace('"', "");
    assert_eq!(fhir_get(&t, &excluded, &hidden).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fhir_get(&t, &included, &hidden).await.0, StatusCode::OK);
    assert_eq!(fhir_get(&t, &excluded, "Practitioner/dr-ramos").await.0, StatusCode::NOT_FOUND);
    assert_eq!(fhir_get(&t, &included, "Practitioner/dr-ramos").await.0, StatusCode::OK);
});

holder_test!(errors_are_operation_outcomes_with_the_right_status, |t| {
    let token = tokens_for(&t, "james", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    let no_token = http().get(format!("{}/Condition", t.fhir)).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert!(no_token.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(fhir_get(&t, "not-a-token", "Condition").await.0, StatusCode::UNAUTHORIZED);
    for (path, status) in [
        ("Condition?code=123", StatusCode::BAD_REQUEST),
        ("Condition?onset-date=yesterday", StatusCode::BAD_REQUEST),
        ("Condition?_cursor=garbage", StatusCode::BAD_REQUEST),
        ("Condition/does-not-exist", StatusCode::NOT_FOUND),
        ("Binary", StatusCode::NOT_FOUND),
    ] {
        let (got, body) = fhir_get(&t, &token, path).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
        assert!(body["issue"][0]["diagnostics"].is_string());
    }
    // A deleted record answers 410 to the member it belonged to.
    let (_, bundle) = fhir_get(&t, &token, "Immunization?_count=1").await;
    let id = bundle["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    assert!(t.store.delete_resource("Immunization", &id).await.unwrap());
    let (status, body) = fhir_get(&t, &token, &format!("Immunization/{id}")).await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (StatusCode::GONE, Some("deleted")));
});

holder_test!(dates_identifiers_and_last_updated, |t| {
    let token = tokens_for(&t, "james", ALL_SCOPES, "include").await["access_token"].as_str().unwrap().to_owned();
    let (entries, _, _) = all_pages(&t, &token, "ExplanationOfBenefit?service-date=ge2025-06-01&_count=100").await;
    let claims = matches(&entries);
    assert!(!claims.is_empty());
    for claim in &claims {
        let end = claim["billablePeriod"]["end"].as_str().unwrap();
        assert!(end >= "2025-06-01", "{end}");
    }
    let identifier = claims[0]["identifier"][0].clone();
    let query = format!(
        "ExplanationOfBenefit?identifier={}|{}",
        identifier["system"].as_str().unwrap(),
        identifier["value"].as_str().unwrap()
    );
    let (_, found) = fhir_get(&t, &token, &query).await;
    assert_eq!(found["total"], 1);
    let (_, none) = fhir_get(&t, &token, "Condition?_lastUpdated=gt2100-01-01").await;
    assert_eq!(none["total"], 0);
    let (_, recent) = fhir_get(&t, &token, "Condition?_lastUpdated=ge2020-01-01").await;
    assert!(recent["total"].as_u64().unwrap() > 0);
});
