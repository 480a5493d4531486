//! The new plan's requests for batches of members (`$bulk-member-match`, `$davinci-data-export`)
//! against a scripted previous plan that is not Baton: it answers as the PDex 2.2 examples do
//! (result Groups with the submitted Patients contained) — or, on request, with the STU 2.1
//! Parameters envelope — and misbehaves the way real servers do: `429` with `Retry-After`, a
//! status URL that errors then recovers, a line cut off, a record about a patient nobody asked
//! about, a file on another server, a match that never finishes, a file that stalls mid-way
//! while its worker dies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton_store::{
    AccountId, ConnectOptions, MemberConsent, NewAccount, PreviousCoverage, ResourceQuery, Store, Timestamp,
};
use baton_transfer::request::RequestEnd;
use baton_transfer::{
    BackendCredentials, BackendKey, ClientAuth, Engine, EngineConfig, PayerCredentials, PayerDirectory, TokenCipher,
};
use baton_vocab::{ConsentChannel, ConsentPolicy, MatchResult, OptIn, RequestState};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const LOCAL_BASE: &str = "https://new-plan.example/fhir";
const PAYER: &str = "oldplan";
const RESULT_SYSTEM: &str = "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS";
const MATCH_PARAMETERS: &str = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters";

/// How the scripted plan misbehaves.
#[derive(Debug, Clone, Default)]
struct Behaviour {
    /// Answer the match with a Parameters envelope (STU 2.1) instead of a manifest of Groups.
    envelope: bool,
    /// The first match poll: `429` with `Retry-After: 1`; the second: `500`.
    busy_then_failing: bool,
    /// The match never finishes.
    never_completes: bool,
    /// The claims file ends with a line cut off, and names a patient no one asked about.
    bad_lines: bool,
    /// The claims file sends this many lines, then nothing more while `Plan::stalled` holds.
    stall_claims_after: Option<usize>,
    /// No bulk match (404): only `Patient/$member-match`, then `$everything` for the member.
    no_bulk: bool,
    /// The match is still working for this many polls, then the status URL fails once.
    slow_then_failing: Option<u32>,
}

/// Cards the plan knows: member id → (its Patient id, whether the Consent can be honoured).
fn known_cards() -> HashMap<&'static str, (&'static str, bool)> {
    [("RB-1", ("rb-maria", true)), ("RB-3", ("rb-sam", false))].into()
}

#[derive(Default)]
struct Seen {
    /// "METHOD path" of every request, with when it came.
    requests: Vec<(String, Instant)>,
    /// The bulk match's body.
    match_body: Option<Value>,
    /// Headers of the match and export kick-offs.
    prefer: Vec<String>,
}

struct Plan {
    behaviour: Behaviour,
    base: String,
    seen: Mutex<Seen>,
    polls: Mutex<u32>,
    stalled: AtomicBool,
}

async fn serve(behaviour: Behaviour) -> Arc<Plan> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stalled = AtomicBool::new(behaviour.stall_claims_after.is_some());
    let plan = Arc::new(Plan { behaviour, base, seen: Mutex::default(), polls: Mutex::new(0), stalled });
    let router = Router::new()
        .route("/.well-known/smart-configuration", axum::routing::get(smart))
        .route("/token", axum::routing::post(token))
        .route("/Group/$bulk-member-match", axum::routing::post(bulk_match))
        .route("/Patient/$member-match", axum::routing::post(member_match))
        .route("/metadata", axum::routing::get(metadata))
        .route("/Patient/{id}/$everything", axum::routing::get(everything))
        .route("/Group/{id}/$davinci-data-export", axum::routing::post(export))
        .route("/status/{which}", axum::routing::get(status).delete(cancel))
        .route("/files/{name}", axum::routing::get(file))
        .layer(axum::middleware::from_fn_with_state(plan.clone(), record))
        .with_state(plan.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    plan
}

async fn record(
    State(plan): State<Arc<Plan>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    plan.seen.lock().unwrap().requests.push((line, Instant::now()));
    next.run(request).await
}

async fn smart(State(plan): State<Arc<Plan>>) -> Response {
    axum::Json(
        json!({"token_endpoint": format!("{}/token", plan.base), "grant_types_supported": ["client_credentials"]}),
    )
    .into_response()
}

async fn token(body: String) -> Response {
    assert!(body.contains("client_assertion="), "a signed assertion: {body}");
    axum::Json(
        json!({"access_token": "system-token", "token_type": "bearer", "expires_in": 300, "scope": "system/*.read"}),
    )
    .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer system-token")
}

fn accepted(plan: &Plan, which: &str) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    response.headers_mut().insert("content-location", format!("{}/status/{which}", plan.base).parse().unwrap());
    response
}

async fn bulk_match(State(plan): State<Arc<Plan>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if plan.behaviour.no_bulk {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported",
            "diagnostics": "Unknown operation $bulk-member-match"}]});
        return (StatusCode::NOT_FOUND, axum::Json(outcome)).into_response();
    }
    let mut seen = plan.seen.lock().unwrap();
    seen.prefer.push(headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned());
    seen.match_body = serde_json::from_slice(&body).ok();
    accepted(&plan, "match")
}

/// HRex `$member-match`: one member, answered at once (200 or 422, as HRex has it).
async fn member_match(headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let parameters: Value = serde_json::from_slice(&body).unwrap_or_default();
    let part = |name: &str| {
        parameters["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .map(|p| p["resource"].clone())
    };
    assert!(part("Consent").is_some() && part("MemberPatient").is_some(), "{parameters}");
    let card = part("CoverageToMatch").and_then(|c| c["subscriberId"].as_str().map(str::to_owned)).unwrap_or_default();
    let refuse = |said: &str| {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": said}]});
        (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(outcome)).into_response()
    };
    match known_cards().get(card.as_str()) {
        Some((id, true)) => axum::Json(json!({"resourceType": "Parameters", "parameter": [
            {"name": "MemberIdentifier", "valueIdentifier": {"type": {"coding": [{"code": "UMB"}]}, "system": "https://old.example/member", "value": card}},
            {"name": "MemberId", "valueReference": {"reference": format!("Patient/{id}")}}
        ]}))
        .into_response(),
        Some((_, false)) => refuse("The Consent cannot be honoured: this plan requires a Consent for sensitive data"),
        None => refuse("No member matches the demographics and coverage given"),
    }
}

async fn metadata() -> Response {
    axum::Json(json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
        "format": ["json"], "rest": [{"mode": "server", "resource": [{"type": "Patient",
            "operation": [{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]}]}]}))
    .into_response()
}

/// Maria's records, as one page of `$everything`.
async fn everything(Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if id != "rb-maria" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let resources = [
        json!({"resourceType": "Patient", "id": "rb-maria", "name": [{"family": "Garcia", "given": ["Maria"]}]}),
        json!({"resourceType": "Organization", "id": "clinic", "name": "Riverside Clinic"}),
        json!({"resourceType": "ExplanationOfBenefit", "id": "eob-1", "status": "active", "use": "claim",
            "patient": {"reference": "Patient/rb-maria"}, "provider": {"reference": "Organization/clinic"},
            "billablePeriod": {"start": "2025-03-01"}}),
        json!({"resourceType": "Condition", "id": "diabetes", "subject": {"reference": "Patient/rb-maria"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}}),
    ];
    let entry: Vec<Value> =
        resources.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect();
    axum::Json(json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry}))
        .into_response()
}

async fn export(State(plan): State<Arc<Plan>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let parameters: Value = serde_json::from_slice(&body).unwrap_or_default();
    let export_type = parameters["parameter"].as_array().into_iter().flatten().find(|p| p["name"] == "exportType");
    if id != "matched"
        || export_type.and_then(|p| p["valueString"].as_str()) != Some("hl7.fhir.us.davinci-pdex#payertopayer")
    {
        return (StatusCode::BAD_REQUEST, "exportType payertopayer of the matched Group only").into_response();
    }
    plan.seen.lock().unwrap().prefer.push(headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or("").into());
    accepted(&plan, "export")
}

async fn cancel() -> StatusCode {
    StatusCode::ACCEPTED
}

async fn status(State(plan): State<Arc<Plan>>, Path(which): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let poll = {
        let mut polls = plan.polls.lock().unwrap();
        *polls += 1;
        *polls
    };
    let b = &plan.behaviour;
    if which == "match" {
        if let Some(working) = b.slow_then_failing {
            if poll <= working {
                return StatusCode::ACCEPTED.into_response();
            }
            if poll == working + 1 {
                return (StatusCode::SERVICE_UNAVAILABLE, "a passing failure").into_response();
            }
        }
        if b.never_completes || poll == 1 {
            let mut response = StatusCode::ACCEPTED.into_response();
            response.headers_mut().insert("x-progress", "matching 1 of 3".parse().unwrap());
            return response;
        }
        if b.busy_then_failing && poll == 2 {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
        }
        if b.busy_then_failing && poll == 3 {
            return (StatusCode::INTERNAL_SERVER_ERROR, "a passing failure").into_response();
        }
        let groups = result_groups(&plan);
        if b.envelope {
            let parameter: Vec<Value> =
                [("MatchedMembers", 0), ("NonMatchedMembers", 1), ("ConsentConstrainedMembers", 2)]
                    .into_iter()
                    .map(|(name, i)| json!({"name": name, "resource": groups[i]}))
                    .collect();
            return axum::Json(json!({"resourceType": "Parameters", "parameter": parameter})).into_response();
        }
        return axum::Json(manifest(&plan, &[("Group", "groups.ndjson")], &[])).into_response();
    }
    let other_origin = plan.base.replace("127.0.0.1", "localhost");
    let mut body = manifest(
        &plan,
        &[
            ("Patient", "Patient.ndjson"),
            ("ExplanationOfBenefit", "ExplanationOfBenefit.ndjson"),
            ("Condition", "Condition.ndjson"),
            ("Organization", "Organization.ndjson"),
            ("Provenance", "Provenance.ndjson"),
        ],
        &[("OperationOutcome", "errors.ndjson")],
    );
    body["output"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Coverage", "url": format!("{other_origin}/files/elsewhere.ndjson")}));
    axum::Json(body).into_response()
}

fn manifest(plan: &Plan, files: &[(&str, &str)], errors: &[(&str, &str)]) -> Value {
    let entry = |(t, name): &(&str, &str)| json!({"type": t, "url": format!("{}/files/{name}", plan.base)});
    json!({
        "transactionTime": "2026-12-05T10:00:00Z",
        "request": format!("{}/Group/$bulk-member-match", plan.base),
        "requiresAccessToken": true,
        "output": files.iter().map(entry).collect::<Vec<_>>(),
        "error": errors.iter().map(entry).collect::<Vec<_>>(),
    })
}

/// The three result Groups, shaped as the IG's examples: each member a contained copy of the
/// Patient as submitted, named by the match-parameters extension.
fn result_groups(plan: &Plan) -> [Value; 3] {
    let body = plan.seen.lock().unwrap().match_body.clone().unwrap();
    let mut groups: [(Vec<Value>, Vec<Value>); 3] = Default::default();
    for (index, bundle) in body["parameter"].as_array().unwrap().iter().enumerate() {
        let part = |name: &str| {
            bundle["part"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["resource"].clone()
        };
        let mut patient = part("MemberPatient");
        assert_eq!(part("Consent")["resourceType"], "Consent", "each member's Consent is sent");
        let card = part("CoverageToMatch")["subscriberId"].as_str().unwrap().to_owned();
        let local = format!("p{index}");
        patient["id"] = json!(local);
        let (slot, reference) = match known_cards().get(card.as_str()) {
            Some((id, true)) => (0, format!("Patient/{id}")),
            Some((_, false)) => (2, format!("#{local}")),
            None => (1, format!("#{local}")),
        };
        groups[slot].0.push(patient);
        groups[slot].1.push(json!({"entity": {"extension": [{"url": MATCH_PARAMETERS, "valueReference": {"reference": format!("#{local}")}}], "reference": reference}}));
    }
    let codes = [("matched", "match"), ("nonmatched", "nomatch"), ("constrained", "consentconstraint")];
    let [a, b, c] = groups;
    let mut out = [a, b, c].into_iter().zip(codes).map(|((contained, members), (id, code))| {
        json!({"resourceType": "Group", "id": id, "type": "person", "actual": true, "contained": contained,
            "code": {"coding": [{"system": RESULT_SYSTEM, "code": code}]}, "member": members})
    });
    [out.next().unwrap(), out.next().unwrap(), out.next().unwrap()]
}

async fn file(
    State(plan): State<Arc<Plan>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let _ = (method, uri);
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let eob = |id: &str, patient: &str| {
        json!({"resourceType": "ExplanationOfBenefit", "id": id, "status": "active", "use": "claim",
            "patient": {"reference": format!("Patient/{patient}")}, "provider": {"reference": "Organization/clinic"},
            "billablePeriod": {"start": "2025-03-01"}})
    };
    let condition = |id: &str, code: &str| {
        json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/rb-maria"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]}})
    };
    let lines: Vec<String> = match name.as_str() {
        "groups.ndjson" => result_groups(&plan).iter().map(Value::to_string).collect(),
        "Patient.ndjson" => vec![json!({"resourceType": "Patient", "id": "rb-maria", "name": [{"family": "Garcia", "given": ["Maria"]}]}).to_string()],
        "ExplanationOfBenefit.ndjson" => {
            let mut lines: Vec<String> = ["eob-1", "eob-2", "eob-3"].iter().map(|id| eob(id, "rb-maria").to_string()).collect();
            if plan.behaviour.bad_lines {
                lines.push(eob("eob-9", "someone-else").to_string());
                lines.push(r#"{"resourceType":"ExplanationOfBenefit","id":"eob-4","patient":{"refer"#.into());
            }
            lines
        }
        "Condition.ndjson" => vec![condition("diabetes", "E11.9").to_string(), condition("hiv", "B20").to_string()],
        "Organization.ndjson" => vec![json!({"resourceType": "Organization", "id": "clinic", "name": "Riverside Clinic"}).to_string()],
        "Provenance.ndjson" => vec![json!({"resourceType": "Provenance", "id": "prov-1", "recorded": "2025-03-02T00:00:00Z",
            "target": [{"reference": "ExplanationOfBenefit/eob-1"}], "agent": [{"who": {"reference": "Organization/clinic"}}]}).to_string()],
        "errors.ndjson" => vec![json!({"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing", "diagnostics": "Coverage history before 2021 is archived"}]}).to_string()],
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if let Some(sent) = plan.behaviour.stall_claims_after.filter(|_| name == "ExplanationOfBenefit.ndjson")
        && plan.stalled.load(Ordering::SeqCst)
    {
        let first: Vec<Result<String, std::io::Error>> = lines.into_iter().take(sent).map(|l| Ok(l + "\n")).collect();
        let body = futures_util::StreamExt::chain(futures_util::stream::iter(first), futures_util::stream::pending());
        return ([("content-type", "application/fhir+ndjson")], axum::body::Body::from_stream(body)).into_response();
    }
    let mut text = lines.join("\n");
    if !(plan.behaviour.bad_lines && name == "ExplanationOfBenefit.ndjson") {
        text.push('\n');
    }
    ([("content-type", "application/fhir+ndjson")], text).into_response()
}

struct Directory {
    base: String,
    key: BackendKey,
}

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == PAYER).then(|| PayerCredentials {
            client_id: "new-plan".into(),
            auth: ClientAuth::Secret("unused".into()),
            token_url: None,
            name: "Old Plan".into(),
            backend: Some(BackendCredentials {
                client_id: "new-plan-system".into(),
                key: self.key.clone(),
                scope: "system/*.read".into(),
                payer_identifiers: vec![],
                token_url: None,
            }),
        })
    }

    fn fhir_base(&self, payer_id: &str) -> Option<String> {
        (payer_id == PAYER).then(|| self.base.clone())
    }
}

fn backend_key() -> BackendKey {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pem = PEM.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .to_string()
    });
    BackendKey::from_pem(pem).unwrap()
}

struct World {
    plan: Arc<Plan>,
    store: Store,
    engine: Engine,
    config: EngineConfig,
    /// Maria (matched), Lee (unknown there), Sam (a Consent it cannot honour).
    members: [AccountId; 3],
    _dir: tempfile::TempDir,
}

async fn world(behaviour: Behaviour) -> World {
    let plan = serve(behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::connect(&format!("sqlite://{}", dir.path().join("store.db").display()), &ConnectOptions::default())
            .await
            .unwrap();
    store.migrate().await.unwrap();
    let mut config = EngineConfig::new(LOCAL_BASE, "New Plan");
    config.requests.poll_min = Duration::from_millis(100);
    config.requests.poll_max = Duration::from_millis(400);
    config.requests.give_up_after = Duration::from_secs(3);
    config.lease = Duration::from_secs(30);
    let directory = Directory { base: plan.base.clone(), key: backend_key() };
    let engine = Engine::new(store.clone(), TokenCipher::new(&[7; 32]), config.clone(), Arc::new(directory));
    let now = Timestamp::now();
    let mut members = vec![];
    for (i, (username, name, card, sensitive)) in [
        ("maria", "Maria Garcia", "RB-1", false),
        ("lee", "Lee Chen", "RB-2", false),
        ("sam", "Sam Ortiz", "RB-3", true),
    ]
    .into_iter()
    .enumerate()
    {
        let account = store
            .insert_account(&NewAccount {
                username: username.into(),
                display_name: name.into(),
                member_id: Some(format!("NEW-{i}")),
                birth_date: baton_vocab::day::parse("1980-04-02"),
                ..Default::default()
            })
            .await
            .unwrap();
        let consent = format!("consent-{username}");
        store
            .insert_consent(&MemberConsent {
                id: consent.clone(),
                member_account: account,
                payer_id: PAYER.into(),
                policy: ConsentPolicy::of(sensitive),
                period_start: now.millis() - 60_000,
                period_end: now.millis() + 90 * 86_400_000,
                given_at: now.millis(),
                channel: ConsentChannel::Enrollment,
                resource: json!({"resourceType": "Consent", "id": consent, "status": "active"}).to_string(),
                withdrawn_at: None,
                created_at: now.millis(),
                records_deleted: None,
                records_kept: None,
                records_shared: None,
                replaced_by: None,
            })
            .await
            .unwrap();
        store
            .save_previous_coverage(&PreviousCoverage {
                id: format!("coverage-{username}"),
                member_account: account,
                payer_id: PAYER.into(),
                member_id: card.into(),
                coverage_start: None,
                coverage_end: None,
                concurrent: username == "maria",
                opt_in: OptIn::In,
                opted_at: Some(now.millis()),
                opt_in_channel: Some(ConsentChannel::Enrollment),
                opt_in_recorded_by: Some("roster".into()),
                consent_id: Some(consent),
                next_request_at: Some(now.millis()),
                last_request_id: None,
                last_exported_at: None,
                created_at: now.millis(),
                updated_at: now.millis(),
            })
            .await
            .unwrap();
        members.push(account);
    }
    World { plan, store, engine, config, members: members.try_into().unwrap(), _dir: dir }
}

impl World {
    /// Starts the request for the members due and runs it (and the transfers it starts) until
    /// it ends.
    async fn run(&self) -> baton_store::P2pRequest {
        self.run_by(&self.engine).await
    }

    /// As [`World::run`], by another worker.
    async fn run_by(&self, engine: &Engine) -> baton_store::P2pRequest {
        let started = engine.queue_due_requests(Timestamp::now()).await.unwrap();
        assert_eq!(started.len(), 1, "one request for the three members");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = self.store.request(&started[0]).await.unwrap().unwrap();
            if request.state.is_finished() {
                return request;
            }
            assert!(Instant::now() < deadline, "the request did not end: {request:?}");
            let ran_request = engine.run_request_once().await.unwrap();
            let ran_transfer = engine.run_once().await.unwrap();
            if let Some((_, RequestEnd::Failed(why))) = &ran_request {
                tracing::info!(%why, "request failed");
            }
            if ran_request.is_none() && ran_transfer.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn stored(&self, member: AccountId) -> Vec<Value> {
        let query = ResourceQuery { member_account: Some(member), limit: 1000, ..Default::default() };
        let page = self.store.search_resources(&query).await.unwrap();
        page.resources.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }

    /// Another worker on the same store, with its own lease length.
    fn worker(&self, id: &str, lease: Duration, lines_per_commit: usize) -> Engine {
        self.worker_with(id, |config| {
            config.lease = lease;
            config.requests.lines_per_commit = lines_per_commit;
        })
    }

    /// Another worker on the same store, configured by `configure`.
    fn worker_with(&self, id: &str, configure: impl FnOnce(&mut EngineConfig)) -> Engine {
        let mut config = self.config.clone();
        config.worker_id = id.into();
        configure(&mut config);
        let directory = Directory { base: self.plan.base.clone(), key: backend_key() };
        Engine::new(self.store.clone(), TokenCipher::new(&[7; 32]), config, Arc::new(directory))
    }

    fn seen(&self, what: &str) -> Vec<Instant> {
        self.plan.seen.lock().unwrap().requests.iter().filter(|(r, _)| r == what).map(|(_, at)| *at).collect()
    }
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["resourceType"] == t).collect()
}

#[tokio::test]
async fn a_plan_that_answers_as_the_guide_s_examples_do_gets_each_member_s_answer_recorded_and_records_filed() {
    let world = world(Behaviour::default()).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    assert_eq!((request.members, request.matched, request.not_matched, request.constrained), (3, 1, 1, 1));
    let seen = world.plan.seen.lock().unwrap().prefer.clone();
    assert_eq!(seen, vec!["respond-async", "respond-async"], "both operations asked asynchronously");
    let sent = world.plan.seen.lock().unwrap().match_body.clone().unwrap();
    assert_eq!(sent["parameter"].as_array().unwrap().len(), 3, "one MemberBundle per member");

    let results: HashMap<AccountId, Option<MatchResult>> = world
        .store
        .request_members(&request.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.member_account, m.result))
        .collect();
    let [maria, lee, sam] = world.members;
    assert_eq!(results[&maria], Some(MatchResult::Matched));
    assert_eq!(results[&lee], Some(MatchResult::NoMatch));
    assert_eq!(results[&sam], Some(MatchResult::ConsentRefused));

    let records = world.stored(maria).await;
    assert_eq!(of_type(&records, "ExplanationOfBenefit").len(), 3);
    let conditions = of_type(&records, "Condition");
    assert_eq!(conditions.len(), 1, "her Consent is #regular: the HIV diagnosis is left out");
    assert_eq!(conditions[0]["code"]["coding"][0]["code"], "E11.9");
    let clinic = of_type(&records, "Organization").into_iter().any(|o| o["name"] == "Riverside Clinic");
    let shared = world
        .store
        .search_resources(&ResourceQuery {
            resource_types: vec!["Organization".into()],
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        clinic || shared.resources.iter().any(|r| r.body.contains("Riverside Clinic")),
        "the clinic the export brought is filed"
    );
    assert!(
        of_type(&records, "Provenance").iter().any(|p| p["id"] != Value::Null && p.to_string().contains("2025-03-02")),
        "the plan's own Provenance of her claim is kept, with her"
    );
    assert!(world.stored(lee).await.iter().all(|r| r["resourceType"] == "Patient"));
    assert!(world.stored(sam).await.iter().all(|r| r["resourceType"] == "Patient"));

    // The file on another server was never asked for: the token goes only to the plan's own.
    assert!(world.seen("GET /files/elsewhere.ndjson").is_empty());
    let problems = baton_transfer::request::problems(&request.checkpoint);
    assert!(problems.iter().any(|p| p.contains("another server")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("archived")), "the plan's error file is said: {problems:?}");

    // Maria is still covered there: asked again in a quarter, for what changed since.
    let coverage = world.store.previous_coverage("coverage-maria").await.unwrap().unwrap();
    assert_eq!(coverage.last_exported_at.as_deref(), Some("2026-12-05T10:00:00Z"));
    let next = coverage.next_request_at.unwrap() - Timestamp::now().millis();
    assert!((89 * 86_400_000..=90 * 86_400_000).contains(&next), "{next}");
    assert!(world.store.previous_coverage("coverage-lee").await.unwrap().unwrap().next_request_at.is_none());
}

#[tokio::test]
async fn an_stu_2_1_plan_s_parameters_envelope_is_read_like_groups() {
    let world = world(Behaviour { envelope: true, ..Default::default() }).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    assert_eq!((request.matched, request.not_matched, request.constrained), (1, 1, 1));
    assert_eq!(of_type(&world.stored(world.members[0]).await, "ExplanationOfBenefit").len(), 3);
}

#[tokio::test]
async fn a_busy_plan_is_waited_out_as_it_asks_and_a_status_error_does_not_end_the_request() {
    let world = world(Behaviour { busy_then_failing: true, ..Default::default() }).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    let polls = world.seen("GET /status/match");
    assert_eq!(polls.len(), 4, "pending, 429, 500, done");
    assert!(polls[2] - polls[1] >= Duration::from_secs(1), "Retry-After: 1 was honoured: {:?}", polls[2] - polls[1]);
    assert_eq!(request.matched, 1);
}

#[tokio::test]
async fn a_passing_failure_after_a_long_match_does_not_end_the_request() {
    // More polls than the failures tolerated in a row: polls that were answered are not failures.
    let working = baton_transfer::request::FAILURES_TOLERATED + 5;
    let world = world(Behaviour { slow_then_failing: Some(working), ..Default::default() }).await;
    let worker = world.worker_with("quick-poller", |config| {
        config.requests.poll_min = Duration::from_millis(5);
        config.requests.poll_max = Duration::from_millis(10);
    });
    let request = world.run_by(&worker).await;
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    assert_eq!(world.seen("GET /status/match").len(), working as usize + 2, "working…, the failure, done");
    assert_eq!(request.matched, 1);
}

#[tokio::test]
async fn a_cut_off_line_and_another_patient_s_record_are_counted_and_never_filed() {
    let world = world(Behaviour { bad_lines: true, ..Default::default() }).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    assert_eq!(request.rejected, 2, "{}", request.checkpoint);
    let problems = baton_transfer::request::problems(&request.checkpoint);
    assert!(problems.iter().any(|p| p.contains("cut off")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("did not ask about")), "{problems:?}");
    let records = world.stored(world.members[0]).await;
    assert_eq!(of_type(&records, "ExplanationOfBenefit").len(), 3, "the three whole claims of hers, no more");
    let everyone = world
        .store
        .search_resources(&ResourceQuery {
            resource_types: vec!["ExplanationOfBenefit".into()],
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(everyone.resources.len(), 3, "the claim about someone else is nowhere");
}

#[tokio::test]
async fn a_match_that_never_finishes_is_given_up_clearly_and_cancelled_there() {
    let world = world(Behaviour { never_completes: true, ..Default::default() }).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Failed);
    let error = request.error.unwrap_or_default();
    assert!(error.contains("did not finish matching"), "{error}");
    assert_eq!(world.seen("DELETE /status/match").len(), 1, "cancelled at the plan");
    assert!(world.seen("POST /Group/matched/$davinci-data-export").is_empty());
    let coverage = world.store.previous_coverage("coverage-maria").await.unwrap().unwrap();
    assert!(coverage.last_exported_at.is_none());
}

#[tokio::test]
async fn a_request_cancelled_while_the_plan_is_matching_is_stopped_there_and_a_retry_asks_afresh() {
    let world = world(Behaviour { never_completes: true, ..Default::default() }).await;
    let id = world.engine.queue_due_requests(Timestamp::now()).await.unwrap().remove(0);
    let (_, end) = world.engine.run_request_once().await.unwrap().unwrap();
    assert!(matches!(end, RequestEnd::Waiting(_)), "{end:?}");
    assert_eq!(world.store.request(&id).await.unwrap().unwrap().state, RequestState::Matching);
    assert_eq!(world.engine.withdraw_stopped_requests().await.unwrap(), 0, "nothing stopped yet");

    assert!(world.store.cancel_request(&id, "jordan", Timestamp::now()).await.unwrap());
    assert_eq!(world.engine.withdraw_stopped_requests().await.unwrap(), 1);
    assert_eq!(world.seen("DELETE /status/match").len(), 1, "the plan is asked to stop");
    assert_eq!(world.engine.withdraw_stopped_requests().await.unwrap(), 0, "and asked once");
    let cancelled = world.store.request(&id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, RequestState::Cancelled);
    let problems = baton_transfer::request::problems(&cancelled.checkpoint);
    assert!(problems.iter().any(|p| p.contains("that plan was asked to stop")), "{problems:?}");

    // Retried, it sends the match again instead of polling an operation that was stopped.
    assert!(world.store.retry_request(&id, Timestamp::now()).await.unwrap());
    world.engine.run_request_once().await.unwrap().unwrap();
    assert_eq!(world.seen("POST /Group/$bulk-member-match").len(), 2);
    assert_eq!(world.store.request(&id).await.unwrap().unwrap().state, RequestState::Matching);
}

#[tokio::test]
async fn a_request_cancelled_mid_file_and_retried_files_each_record_once() {
    cancelled_mid_file_and_retried(true).await;
}

#[tokio::test]
async fn a_request_retried_before_it_was_readied_resumes_at_the_line_reached() {
    cancelled_mid_file_and_retried(false).await;
}

/// Cancelled while a file is read, then retried — after a worker readied it (the export asked
/// again), or at once (resumed from the line reached): each record filed once either way.
async fn cancelled_mid_file_and_retried(readied: bool) {
    let world = world(Behaviour { stall_claims_after: Some(2), ..Default::default() }).await;
    let id = world.engine.queue_due_requests(Timestamp::now()).await.unwrap().remove(0);
    let worker = world.worker("worker-a", Duration::from_secs(30), 1);
    let runner = {
        let worker = worker.clone();
        tokio::spawn(async move {
            loop {
                if worker.run_request_once().await.unwrap().is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let claims_staged = || async {
        let staged = world.store.staged_lines(&id, "coverage-maria", 0, 100).await.unwrap();
        staged.iter().filter(|(_, body)| body.contains("\"ExplanationOfBenefit\"")).count()
    };
    while claims_staged().await < 2 {
        assert!(Instant::now() < deadline, "never reached the stalled file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(world.store.cancel_request(&id, "jordan", Timestamp::now()).await.unwrap());
    runner.abort();
    let _ = runner.await;
    if readied {
        assert_eq!(world.engine.withdraw_stopped_requests().await.unwrap(), 1, "readied: the export is asked again");
        assert!(world.seen("DELETE /status/export").is_empty(), "the export had finished there: nothing to stop");
        assert_eq!(claims_staged().await, 0, "its lines let go");
    } else {
        assert_eq!(claims_staged().await, 2, "its lines kept until it is readied");
    }

    world.plan.stalled.store(false, Ordering::SeqCst);
    assert!(world.store.retry_request(&id, Timestamp::now()).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let request = loop {
        let request = world.store.request(&id).await.unwrap().unwrap();
        if request.state.is_finished() {
            break request;
        }
        assert!(Instant::now() < deadline, "the retry did not end: {request:?}");
        let ran = world.engine.run_request_once().await.unwrap();
        let filed = world.engine.run_once().await.unwrap();
        if ran.is_none() && filed.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    let exports = if readied { 2 } else { 1 };
    assert_eq!(world.seen("POST /Group/matched/$davinci-data-export").len(), exports);
    assert_eq!(world.seen("POST /Group/$bulk-member-match").len(), 1, "the match stands");
    let maria = world.stored(world.members[0]).await;
    assert_eq!(of_type(&maria, "ExplanationOfBenefit").len(), 3, "each claim once");
    let undisturbed = self::world(Behaviour::default()).await.run().await;
    assert_eq!(request.lines, undisturbed.lines, "the lines counted once");
}

#[tokio::test]
async fn a_worker_that_dies_mid_file_is_taken_over_and_each_line_is_filed_once() {
    let world = world(Behaviour { stall_claims_after: Some(2), ..Default::default() }).await;
    let started = world.engine.queue_due_requests(Timestamp::now()).await.unwrap();
    let id = started[0].clone();
    // The first worker commits every line; it dies while the claims file hangs after two.
    let first = world.worker("worker-a", Duration::from_secs(1), 1);
    let runner = {
        let first = first.clone();
        tokio::spawn(async move {
            loop {
                if first.run_request_once().await.unwrap().is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = world.store.request(&id).await.unwrap().unwrap();
        let staged = world.store.staged_lines(&id, "coverage-maria", 0, 100).await.unwrap();
        let claims = staged.iter().filter(|(_, body)| body.contains("\"ExplanationOfBenefit\"")).count();
        if claims == 2 {
            assert_eq!(request.lease_owner.as_deref(), Some("worker-a"), "{request:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the first worker never reached the stalled file: {request:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.abort();
    let _ = runner.await;
    drop(first);

    // The plan recovers; another worker takes the request over once the lease has run out.
    world.plan.stalled.store(false, Ordering::SeqCst);
    let second = world.worker("worker-b", Duration::from_secs(30), 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let request = loop {
        let request = world.store.request(&id).await.unwrap().unwrap();
        if request.state.is_finished() {
            break request;
        }
        assert!(Instant::now() < deadline, "not taken over: {request:?}");
        let ran = second.run_request_once().await.unwrap();
        let filed = second.run_once().await.unwrap();
        if ran.is_none() && filed.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(request.state, RequestState::Completed, "{:?}", request.error);
    assert_eq!(request.rejected, 0);
    let claims_requested = world.seen("GET /files/ExplanationOfBenefit.ndjson").len();
    assert_eq!(claims_requested, 2, "the file was read again from the line reached");
    let maria = world.stored(world.members[0]).await;
    assert_eq!(of_type(&maria, "ExplanationOfBenefit").len(), 3, "each claim once");
    // The same export read by a worker that never died.
    let undisturbed = self::world(Behaviour::default()).await.run().await;
    assert_eq!(request.lines, undisturbed.lines, "every line read once");
}

#[tokio::test]
async fn a_plan_without_bulk_match_is_asked_for_each_member_and_the_matched_one_s_records_pulled() {
    let world = world(Behaviour { no_bulk: true, ..Default::default() }).await;
    let request = world.run().await;
    assert_eq!(request.state, RequestState::Completed, "{:?} {}", request.error, request.checkpoint);
    assert_eq!((request.members, request.matched, request.not_matched, request.constrained), (3, 1, 1, 1));
    assert_eq!(world.seen("POST /Patient/$member-match").len(), 3, "one $member-match per member");
    assert!(world.seen("POST /Group/matched/$davinci-data-export").is_empty(), "no export without a bulk match");
    let problems = baton_transfer::request::problems(&request.checkpoint);
    assert!(problems.iter().any(|p| p.contains("each member was asked with $member-match")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("Consent cannot be honoured")), "{problems:?}");

    let results: HashMap<AccountId, (Option<MatchResult>, Option<String>)> = world
        .store
        .request_members(&request.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.member_account, (m.result, m.transfer_id)))
        .collect();
    let [maria, lee, sam] = world.members;
    assert_eq!(results[&lee].0, Some(MatchResult::NoMatch));
    assert_eq!(results[&sam].0, Some(MatchResult::ConsentRefused));
    assert_eq!(results[&maria].0, Some(MatchResult::Matched));
    let transfer = world.store.transfer(results[&maria].1.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(transfer.state, baton_vocab::TransferState::Completed, "{:?}", transfer.error);
    let link = world.store.link(&transfer.link_id).await.unwrap().unwrap();
    assert_eq!(link.access, baton_vocab::LinkAccess::PayerToPayer, "pulled with the system's token");
    assert_eq!(world.seen("GET /Patient/rb-maria/$everything").len(), 1);
    let stored = world.stored(maria).await;
    assert_eq!(of_type(&stored, "ExplanationOfBenefit").len(), 1);
    assert_eq!(of_type(&stored, "Condition").len(), 1);
    assert!(world.stored(lee).await.iter().all(|r| r["resourceType"] == "Patient"), "nothing reached Lee");
    let coverage = world.store.previous_coverage("coverage-maria").await.unwrap().unwrap();
    assert!(
        coverage.next_request_at.is_some() && coverage.last_exported_at.is_some(),
        "asked again later: {coverage:?}"
    );
}
