//! A real data-holder Baton (the previous plan) behind a scripted, fault-injecting proxy, a new
//! plan's store with a member and a link, and an engine to pull between them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton_store::{AccountId, ConnectOptions, PayerLink, ResourceQuery, Store, Timestamp};
use baton_testbed::{
    ALL_SCOPES, Authorization, CLIENT_ID, CLIENT_SECRET, PAYER_ID, PreviousPlanSetup, enroll, previous_plan,
};
use baton_transfer::{ClientAuth, ClientConfig, Engine, EngineConfig, PayerCredentials, PayerDirectory, TokenCipher};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpListener;
use url::Url;

pub const KEY: [u8; 32] = [42; 32];
pub const LOCAL_BASE: &str = "https://new-plan.example/fhir";

/// What the proxy does to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and Retry-After seconds, if any) instead of forwarding.
    Status(u16, Option<u64>),
    /// Forward, then cut the body off halfway.
    Truncate,
    /// Forward, then replace the body with text that is not JSON.
    Garbage,
    /// Forward, then point the `next` link at another server.
    ForeignNext,
    /// Forward, then add an entry whose resource has no id, one of another type, one about
    /// another patient, and one with an element FHIR R4 does not define.
    BadEntries,
    /// Forward, then add the same Condition to a page of results (as a resource two searches
    /// both find would come).
    SharedEntry,
    /// Forward, then add a Condition that names another member of the new plan on the new
    /// plan's own base, and a record on a third server (a hostile or careless previous plan).
    Hostile,
    /// Forward, then put a page's Provenance before the records they name (as a server that
    /// sorts by type would).
    ProvenanceFirst,
    /// Forward, then drop the Provenance a search of another type brought along (a server
    /// without `_revinclude`: Provenance come only with their own search, last).
    NoRevinclude,
}

/// A fault for requests whose path and query contain `pattern`, `times` times (0: always).
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: String,
    pub fault: Fault,
    pub times: usize,
}

#[derive(Default)]
pub struct Script {
    pub rules: Mutex<Vec<(Rule, usize)>>,
    /// Every request the proxy saw: "METHOD path?query".
    pub seen: Mutex<Vec<String>>,
}

impl Script {
    pub fn add(&self, pattern: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push((Rule { pattern: pattern.into(), fault, times }, 0));
    }

    /// Forgets every rule (the previous plan recovers).
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    fn fault_for(&self, target: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for (rule, used) in rules.iter_mut() {
            if target.contains(&rule.pattern) && (rule.times == 0 || *used < rule.times) {
                *used += 1;
                return Some(rule.fault.clone());
            }
        }
        None
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

pub struct World {
    pub holder_store: Store,
    pub store: Store,
    pub engine: Engine,
    pub script: Arc<Script>,
    /// The previous plan's FHIR base as the engine sees it (through the proxy).
    pub fhir_base: String,
    pub member: AccountId,
    pub link: PayerLink,
    /// What the previous plan issued (tokens in the clear).
    pub authorization: Authorization,
    /// The member's Patient id at the previous plan.
    pub source_patient: String,
    pub _dirs: Vec<tempfile::TempDir>,
}

struct Directory {
    token_url: Option<String>,
}

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == PAYER_ID).then(|| PayerCredentials {
            client_id: CLIENT_ID.into(),
            auth: ClientAuth::Secret(CLIENT_SECRET.into()),
            token_url: self.token_url.clone(),
            name: "Riverbend Health Plan".into(),
            backend: None,
        })
    }
}

pub async fn sqlite_store(dirs: &mut Vec<tempfile::TempDir>) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    dirs.push(dir);
    let store = Store::connect(&url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// Which synthetic member to pull, and how.
pub struct Setup {
    pub member: &'static str,
    pub target_resources: usize,
    pub financial: bool,
    pub include_sensitive: bool,
    pub page_size: u32,
    /// Scopes granted to the new plan.
    pub scope: &'static str,
    /// Serve a CapabilityStatement without `$everything` (per-type searches).
    pub hide_everything: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            member: "Maria",
            target_resources: 0,
            financial: false,
            include_sensitive: true,
            page_size: 100,
            scope: ALL_SCOPES,
            hide_everything: false,
        }
    }
}

/// Builds the world: the holder with one synthetic member, the proxy, the new plan's store
/// with the member, their consent and link (tokens issued by the holder), and an engine.
pub async fn world(setup: Setup, store: Option<Store>) -> World {
    let mut dirs = vec![];
    let holder_store = sqlite_store(&mut dirs).await;
    let store = match store {
        Some(store) => store,
        None => sqlite_store(&mut dirs).await,
    };

    // The previous plan, which believes it lives at the proxy's address (its links and
    // endpoints point there).
    let holder_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let holder_base = format!("http://{}/", holder_listener.local_addr().unwrap());
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_base = format!("http://{}/", proxy_listener.local_addr().unwrap());
    let member = baton_synth::demo_members("rb").into_iter().find(|m| m.given == setup.member).unwrap();
    let mut previous = PreviousPlanSetup::new(Url::parse(&proxy_base).unwrap(), member, setup.target_resources);
    previous.options.financial_claims = setup.financial;
    previous.scope = setup.scope.into();
    let previous = previous_plan(holder_store.clone(), previous).await.unwrap();
    let holder_router = previous.router();
    tokio::spawn(async move { axum::serve(holder_listener, holder_router).await.unwrap() });
    let script = Arc::new(Script::default());
    let proxy = Proxy {
        upstream: holder_base.trim_end_matches('/').to_owned(),
        script: script.clone(),
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        hide_everything: setup.hide_everything,
    };
    let proxy_router = axum::Router::new().fallback(forward).with_state(Arc::new(proxy));
    tokio::spawn(async move { axum::serve(proxy_listener, proxy_router).await.unwrap() });

    // The new plan: the member, their consent and link.
    let cipher = TokenCipher::new(&KEY);
    let authorization = previous.authorization.clone();
    let enrollment =
        enroll(&store, &previous.member, &authorization, setup.include_sensitive, |token, place| cipher.seal_for(token, place).unwrap())
            .await
            .unwrap();

    let mut config = EngineConfig::new(LOCAL_BASE, "Cedar Valley Health");
    config.page_size = setup.page_size;
    // The synthetic records go back six years: ask for all of them (PDex: at least five).
    config.history_years = 10;
    config.lease = Duration::from_secs(30);
    config.client = ClientConfig {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        max_retry_after: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let engine = Engine::new(store.clone(), cipher, config, Arc::new(Directory { token_url: None }));
    World {
        holder_store,
        store,
        engine,
        script,
        fhir_base: authorization.fhir_base.clone(),
        member: enrollment.member,
        link: enrollment.link,
        source_patient: previous.member.patient_id.clone(),
        authorization,
        _dirs: dirs,
    }
}

impl World {
    /// Queues a transfer and runs the engine until it ends.
    pub async fn transfer(&self, id: &str) -> baton_transfer::JobEnd {
        self.store
            .enqueue_transfer(id, &self.link, baton_vocab::TransferKind::Full, None, Timestamp::now())
            .await
            .unwrap();
        loop {
            match self.engine.run_once().await.unwrap() {
                Some((ran, end)) if ran == id => return end,
                Some(_) => continue,
                None => panic!("the transfer was not claimable"),
            }
        }
    }

    /// Every live resource the member has in the new plan's store.
    pub async fn stored(&self) -> Vec<Value> {
        let mut all = vec![];
        let mut query = ResourceQuery { member_account: Some(self.member), limit: 1000, ..Default::default() };
        loop {
            let page = self.store.search_resources(&query).await.unwrap();
            all.extend(page.resources.iter().map(|r| serde_json::from_str::<Value>(&r.body).unwrap()));
            match page.next_after_seq {
                Some(after) => {
                    query.after_seq = Some(after);
                    query.snapshot_seq = Some(page.snapshot_seq);
                }
                None => break,
            }
        }
        all
    }

    /// How many resources the previous plan holds for the member, by type.
    pub async fn source_counts(&self) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for t in baton_fhir::exchange::EXCHANGE_TYPES {
            let query = ResourceQuery {
                resource_types: vec![(*t).into()],
                patient_id: Some(self.source_patient.clone()),
                limit: 1,
                ..Default::default()
            };
            let n = self.holder_store.count_resources(&query).await.unwrap();
            if n > 0 {
                counts.insert((*t).to_owned(), n);
            }
        }
        counts
    }
}

struct Proxy {
    upstream: String,
    script: Arc<Script>,
    http: reqwest::Client,
    hide_everything: bool,
}

/// Forwards to the holder, applying the script; rewrites the holder's own address to the
/// proxy's in bodies (so that links stay on the origin the engine talks to).
async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    proxy.script.seen.lock().unwrap().push(format!("{method} {target}"));
    let fault = proxy.script.fault_for(&target);
    if let Some(Fault::Status(status, retry_after)) = &fault {
        let mut response = (StatusCode::from_u16(*status).unwrap(), r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"scripted failure"}]}"#).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    let mut request = proxy.http.request(method, format!("{}{target}", proxy.upstream)).body(body);
    for name in ["authorization", "content-type", "accept"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let upstream = request.send().await.unwrap();
    let status = upstream.status();
    let content_type = upstream.headers().get("content-type").cloned();
    let mut text = upstream.text().await.unwrap();
    if proxy.hide_everything && target.starts_with("/fhir/metadata") {
        let mut capability: Value = serde_json::from_str(&text).unwrap();
        capability["rest"][0]["operation"] = Value::Array(vec![]);
        for resource in capability["rest"][0]["resource"].as_array_mut().unwrap() {
            resource.as_object_mut().unwrap().remove("operation");
        }
        text = capability.to_string();
    }
    match fault {
        Some(Fault::Garbage) => text = "<html>this is not JSON</html>".into(),
        Some(Fault::ForeignNext) => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            for link in bundle["link"].as_array_mut().into_iter().flatten() {
                if link["relation"] == "next" {
                    link["url"] = Value::String("https://elsewhere.example/fhir/steal-the-token".into());
                }
            }
            text = bundle.to_string();
        }
        Some(Fault::BadEntries) => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            if let Some(entries) = bundle["entry"].as_array_mut() {
                entries.push(serde_json::json!({"resource": {"resourceType": "Condition", "subject": {"reference": "Patient/x"}}}));
                entries.push(serde_json::json!({"resource": {"resourceType": "Binary", "id": "b1"}}));
                entries.push(serde_json::json!({"resource": {"resourceType": "Condition", "id": "fine-1",
                    "code": {"text": "Sprained ankle"}, "unknownElement": {"kept": true}}}));
                entries.push(serde_json::json!({"resource": {"resourceType": "Condition", "id": "someone-else-1",
                    "subject": {"reference": "Patient/whoever"}, "code": {"text": "Not theirs"}}}));
            }
            text = bundle.to_string();
        }
        Some(Fault::Hostile) => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            if let Some(entries) = bundle["entry"].as_array_mut() {
                entries.push(serde_json::json!({"resource": {"resourceType": "Condition", "id": "hostile-1",
                    "subject": {"reference": format!("{LOCAL_BASE}/Patient/member-999")},
                    "encounter": {"reference": "https://third.example/fhir/Encounter/e1", "display": "Elsewhere"},
                    "code": {"text": "Planted"}}}));
            }
            text = bundle.to_string();
        }
        Some(Fault::SharedEntry) => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            let searchset = bundle["type"] == "searchset";
            if let Some(entries) = bundle["entry"].as_array_mut().filter(|_| searchset) {
                entries.push(serde_json::json!({"resource": {"resourceType": "Condition", "id": "shared-1",
                    "code": {"text": "Found on every page"}}}));
            }
            text = bundle.to_string();
        }
        Some(Fault::NoRevinclude) if status.is_success() && !target.contains("/Provenance") => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            if let Some(entries) = bundle["entry"].as_array_mut() {
                entries.retain(|e| e["resource"]["resourceType"] != "Provenance");
            }
            text = bundle.to_string();
        }
        Some(Fault::ProvenanceFirst) if status.is_success() => {
            let mut bundle: Value = serde_json::from_str(&text).unwrap();
            if let Some(entries) = bundle["entry"].as_array_mut() {
                entries.sort_by_key(|e| e["resource"]["resourceType"] != "Provenance");
            }
            text = bundle.to_string();
        }
        _ => {}
    }
    let mut response = if let Some(Fault::Truncate) = fault {
        let half = text.as_bytes()[..text.len() / 2].to_vec();
        let stream = futures_stream(half);
        Response::builder()
            .status(status)
            .header("content-length", text.len().to_string())
            .body(Body::from_stream(stream))
            .unwrap()
    } else {
        (status, text).into_response()
    };
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    }
    response
}

/// A body stream that yields `bytes` and then fails (the connection drops mid-body).
fn futures_stream(bytes: Vec<u8>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(Some(bytes), |state| async move {
        match state {
            Some(bytes) => Some((Ok(Bytes::from(bytes)), None)),
            None => {
                // Let the head and the first half reach the client before the connection drops.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Some((Err(std::io::Error::other("connection dropped")), None))
            }
        }
    })
    .take(2)
}
