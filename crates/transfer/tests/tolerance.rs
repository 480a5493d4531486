//! Issue 16's tolerance suite: a scripted FHIR server that is not Baton, answering the way real
//! servers do. Each test turns on one of its quirks; the transfer completes with every record
//! once — nothing an outcome entry said is stored as a record — or fails with the cause in words.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use baton_store::{ConnectOptions, ResourceQuery, Store, Timestamp};
use baton_testbed::{Authorization, CLIENT_ID, CLIENT_SECRET, PAYER_ID, enroll};
use baton_transfer::{
    ClientAuth, ClientConfig, Engine, EngineConfig, JobEnd, PayerCredentials, PayerDirectory, Progress, TokenCipher,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How the scripted server misbehaves.
#[derive(Debug, Clone, Default)]
struct Quirks {
    /// Searchset pages without `total`.
    no_total: bool,
    /// `next` links with the host in capitals (`LOCALHOST`).
    shouting_host: bool,
    /// An `OperationOutcome` entry (`search.mode = outcome`) on the first page.
    outcome_entry: bool,
    /// The first page is a 200 whose body is an OperationOutcome.
    outcome_body: bool,
    /// Bodies gzip-compressed.
    gzip: bool,
    /// `Content-Type: application/json` rather than `application/fhir+json`.
    plain_json: bool,
    /// `_count` ignored: pages of 10.
    ignores_count: bool,
    /// No `$everything` in the CapabilityStatement: one search per type.
    no_everything: bool,
    /// `$everything` offered, but it answers 501.
    everything_501: bool,
}

struct Plan {
    base: String,
    quirks: Quirks,
    records: Vec<Value>,
    seen: Mutex<Vec<String>>,
}

/// The member's records at the scripted plan: 1 Patient, 1 Coverage, 24 Conditions, 6 claims.
fn records() -> Vec<Value> {
    let mut all = vec![
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Garcia", "given": ["Maria"]}], "birthDate": "1984-03-12"}),
        json!({"resourceType": "Coverage", "id": "cov1", "status": "active", "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"display": "Scripted Plan"}]}),
    ];
    for n in 0..24 {
        all.push(json!({"resourceType": "Condition", "id": format!("cond{n}"), "subject": {"reference": "Patient/p1"},
            "code": {"text": format!("Condition {n}")}, "onsetDateTime": "2024-02-01"}));
    }
    for n in 0..6 {
        all.push(json!({"resourceType": "ExplanationOfBenefit", "id": format!("eob{n}"), "status": "active", "use": "claim",
            "patient": {"reference": "Patient/p1"}, "billablePeriod": {"start": "2025-01-10"}, "created": "2025-01-12",
            "insurer": {"display": "Scripted Plan"}, "provider": {"display": "A clinic"}, "outcome": "complete",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "insurance": [{"focal": true, "coverage": {"reference": "Coverage/cov1"}}]}));
    }
    all
}

fn counts(records: &[Value]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for r in records {
        *counts.entry(r["resourceType"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

async fn serve(quirks: Quirks) -> Arc<Plan> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}/fhir", listener.local_addr().unwrap().port());
    let plan = Arc::new(Plan { base, quirks, records: records(), seen: Mutex::default() });
    let router = Router::new()
        .route("/fhir/metadata", axum::routing::get(metadata))
        .route("/fhir/Patient/{id}/$everything", axum::routing::get(everything))
        .route("/fhir/{resource_type}", axum::routing::get(search))
        .with_state(plan.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    plan
}

fn answer(plan: &Plan, status: StatusCode, body: &Value) -> Response {
    let content_type = if plan.quirks.plain_json { "application/json" } else { "application/fhir+json" };
    let text = body.to_string();
    if plan.quirks.gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let zipped = encoder.finish().unwrap();
        return (status, [("content-type", content_type), ("content-encoding", "gzip")], zipped).into_response();
    }
    (status, [("content-type", content_type)], text).into_response()
}

async fn metadata(State(plan): State<Arc<Plan>>) -> Response {
    let types = ["Patient", "Coverage", "Condition", "ExplanationOfBenefit"];
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let param = if *t == "Coverage" { "beneficiary" } else { "patient" };
            let mut resource = json!({"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": "_id"}, {"name": param}]});
            if *t == "Patient" && !plan.quirks.no_everything {
                resource["operation"] = json!([{"name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
            }
            resource
        })
        .collect();
    let body = json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server", "resource": resources}]});
    answer(&plan, StatusCode::OK, &body)
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer access-token")
}

async fn everything(
    State(plan): State<Arc<Plan>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) || id != "p1" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if plan.quirks.everything_501 {
        let outcome = json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "$everything is not implemented"}]});
        return answer(&plan, StatusCode::NOT_IMPLEMENTED, &outcome);
    }
    let all: Vec<&Value> = plan.records.iter().collect();
    page(&plan, "Patient/p1/$everything", &all, &query)
}

async fn search(
    State(plan): State<Arc<Plan>>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let matches: Vec<&Value> = plan.records.iter().filter(|r| r["resourceType"] == resource_type.as_str()).collect();
    page(&plan, &resource_type, &matches, &query)
}

/// One searchset page of `matches`, `page` in the query (from 0), with a `next` link.
fn page(plan: &Plan, path: &str, matches: &[&Value], query: &HashMap<String, String>) -> Response {
    let number: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    plan.seen.lock().unwrap().push(format!("{path} page {number}"));
    if number == 0 && plan.quirks.outcome_body {
        let outcome = json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": "the member's records are being moved; try tomorrow"}]});
        return answer(plan, StatusCode::OK, &outcome);
    }
    let size = if plan.quirks.ignores_count {
        10
    } else {
        query.get("_count").and_then(|c| c.parse().ok()).unwrap_or(10usize).max(1)
    };
    let chunk: Vec<&&Value> = matches.iter().skip(number * size).take(size).collect();
    let mut entries: Vec<Value> = chunk
        .iter()
        .map(|r| json!({"fullUrl": format!("{}/{}/{}", plan.base, r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
            "resource": r, "search": {"mode": "match"}}))
        .collect();
    if number == 0 && plan.quirks.outcome_entry {
        entries.push(json!({"resource": {"resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational", "diagnostics": "claims before 2020 are archived"}]},
            "search": {"mode": "outcome"}}));
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": entries,
        "link": [{"relation": "self", "url": format!("{}/{path}?page={number}", plan.base)}]});
    if !plan.quirks.no_total {
        bundle["total"] = json!(matches.len());
    }
    if (number + 1) * size < matches.len() {
        let base = if plan.quirks.shouting_host { plan.base.replace("localhost", "LOCALHOST") } else { plan.base.clone() };
        let mut next = url::Url::parse(&format!("{base}/{path}")).unwrap();
        next.query_pairs_mut().extend_pairs(query.iter().filter(|(k, _)| *k != "page")).append_pair("page", &(number + 1).to_string());
        bundle["link"].as_array_mut().unwrap().push(json!({"relation": "next", "url": next.to_string()}));
    }
    answer(plan, StatusCode::OK, &bundle)
}

struct Directory;

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == PAYER_ID).then(|| PayerCredentials {
            client_id: CLIENT_ID.into(),
            auth: ClientAuth::Secret(CLIENT_SECRET.into()),
            token_url: None,
            name: "Scripted Plan".into(),
            backend: None,
        })
    }
}

struct World {
    plan: Arc<Plan>,
    store: Store,
    engine: Engine,
    link: baton_store::PayerLink,
    member: baton_store::AccountId,
    _dir: tempfile::TempDir,
}

async fn world(quirks: Quirks) -> World {
    let plan = serve(quirks).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("store.db").display()), &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let cipher = TokenCipher::new(&[9; 32]);
    let member = baton_synth::demo_members("sp").into_iter().next().unwrap();
    let authorization = Authorization {
        fhir_base: plan.base.clone(),
        token_url: format!("{}/token", plan.base),
        patient_id: "p1".into(),
        scope: "launch/patient patient/*.rs".into(),
        access_token: "access-token".into(),
        refresh_token: "refresh-token".into(),
        resources: plan.records.len() as u64,
    };
    let enrollment =
        enroll(&store, &member, &authorization, true, |token, place| cipher.seal_for(token, place).unwrap()).await.unwrap();
    let mut config = EngineConfig::new("https://new-plan.example/fhir", "Cedar Valley Health");
    config.page_size = 8;
    config.history_years = 10;
    config.client = ClientConfig {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let engine = Engine::new(store.clone(), cipher, config, Arc::new(Directory));
    World { plan, store, engine, link: enrollment.link, member: enrollment.member, _dir: dir }
}

impl World {
    async fn transfer(&self) -> (JobEnd, Progress) {
        self.store.enqueue_transfer("t1", &self.link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
        let end = loop {
            match self.engine.run_once().await.unwrap() {
                Some((ran, end)) if ran == "t1" => break end,
                Some(_) => continue,
                None => panic!("the transfer was not claimable"),
            }
        };
        (end, Progress::from_json(&self.store.transfer("t1").await.unwrap().unwrap().progress))
    }

    /// The transfer completed with every scripted record stored once, and nothing else.
    async fn completes_with_everything(&self) -> Progress {
        let (end, progress) = self.transfer().await;
        assert_eq!(end, JobEnd::Completed, "{progress:?}");
        let expected = counts(&self.plan.records);
        for (t, n) in &expected {
            assert_eq!(progress.types.get(t).map(|c| c.stored), Some(*n), "{t}: {progress:?}");
        }
        let query = ResourceQuery {
            member_account: Some(self.member),
            resource_types: vec!["OperationOutcome".into()],
            limit: 10,
            ..Default::default()
        };
        assert!(self.store.search_resources(&query).await.unwrap().resources.is_empty());
        progress
    }
}

#[tokio::test]
async fn pages_without_a_total_are_followed_to_the_end() {
    let world = world(Quirks { no_total: true, ..Quirks::default() }).await;
    let progress = world.completes_with_everything().await;
    assert_eq!(progress.expected, None, "no total was promised");
}

#[tokio::test]
async fn a_next_link_with_the_host_in_capitals_is_the_same_server() {
    let world = world(Quirks { shouting_host: true, ..Quirks::default() }).await;
    world.completes_with_everything().await;
    assert!(world.plan.seen.lock().unwrap().iter().any(|s| s.ends_with("page 3")), "every page was followed");
}

#[tokio::test]
async fn an_outcome_entry_is_recorded_and_not_stored_as_a_record() {
    let world = world(Quirks { outcome_entry: true, ..Quirks::default() }).await;
    world.completes_with_everything().await;
    let events = world.store.transfer_events("t1").await.unwrap();
    assert!(events.iter().any(|e| e.detail.contains("claims before 2020 are archived")), "{events:?}");
}

#[tokio::test]
async fn a_200_whose_body_is_an_operation_outcome_fails_with_what_it_said() {
    let world = world(Quirks { outcome_body: true, ..Quirks::default() }).await;
    let (end, _) = world.transfer().await;
    let JobEnd::Failed(why) = end else { panic!("{end:?}") };
    assert!(why.contains("the member's records are being moved; try tomorrow"), "{why}");
}

#[tokio::test]
async fn gzip_bodies_are_read() {
    world(Quirks { gzip: true, ..Quirks::default() }).await.completes_with_everything().await;
}

#[tokio::test]
async fn application_json_is_read_as_fhir_json() {
    world(Quirks { plain_json: true, ..Quirks::default() }).await.completes_with_everything().await;
}

#[tokio::test]
async fn a_server_that_ignores_count_is_paged_as_it_pages() {
    let world = world(Quirks { ignores_count: true, ..Quirks::default() }).await;
    let progress = world.completes_with_everything().await;
    assert_eq!(progress.pages, 4, "32 records in pages of 10");
}

#[tokio::test]
async fn without_everything_each_type_is_searched() {
    let world = world(Quirks { no_everything: true, ..Quirks::default() }).await;
    world.completes_with_everything().await;
    let seen = world.plan.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|s| s.contains("$everything")), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("Condition page")), "{seen:?}");
}

#[tokio::test]
async fn an_everything_listed_but_answering_501_is_replaced_by_a_search_per_type() {
    let world = world(Quirks { everything_501: true, ..Quirks::default() }).await;
    world.completes_with_everything().await;
    let seen = world.plan.seen.lock().unwrap().clone();
    assert!(seen.iter().any(|s| s.starts_with("Condition page")), "{seen:?}");
    let events = world.store.transfer_events("t1").await.unwrap();
    assert!(events.iter().any(|e| e.detail.contains("$everything is not implemented")), "said why: {events:?}");
}
