//! A real data-holder Baton (the previous plan) behind a scripted, fault-injecting proxy, a new
//! plan's store with a member and a link, and an engine to pull between them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton_accounts::{Accounts, NewMember, NewPassword, ThrottlePolicy, Username};
use baton_holder::{ClientSettings, Holder, HolderSettings, SigningKey};
use baton_store::{
    AccountId, ConnectOptions, MemberConsent, OAuthGrant, PayerLink, ResourceQuery, Store, Timestamp, TokenKind,
};
use baton_synth::{Options, Payer};
use baton_transfer::{ClientAuth, ClientConfig, Engine, EngineConfig, PayerCredentials, PayerDirectory, TokenCipher};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::macros::date;
use tokio::net::TcpListener;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use url::Url;

pub const CLIENT_ID: &str = "new-plan";
pub const CLIENT_SECRET: &str = "a-long-shared-client-secret";
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
    /// Forward, then add an entry whose resource has no id, and one of another type.
    BadEntries,
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
    /// The member's Patient id at the previous plan.
    pub source_patient: String,
    pub _dirs: Vec<tempfile::TempDir>,
}

fn signing_key() -> SigningKey {
    static PEM: OnceLock<String> = OnceLock::new();
    SigningKey::from_pem(PEM.get_or_init(|| SigningKey::generate_pem().unwrap())).unwrap()
}

struct Directory {
    token_url: Option<String>,
}

impl PayerDirectory for Directory {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        (payer_id == "riverbend").then(|| PayerCredentials {
            client_id: CLIENT_ID.into(),
            auth: ClientAuth::Secret(CLIENT_SECRET.into()),
            token_url: self.token_url.clone(),
            name: "Riverbend Health Plan".into(),
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
            scope: "launch/patient openid fhirUser offline_access patient/*.rs",
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

    // The previous plan.
    let holder_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let holder_base = format!("http://{}/", holder_listener.local_addr().unwrap());
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_base = format!("http://{}/", proxy_listener.local_addr().unwrap());
    let holder_accounts = Accounts::new(holder_store.clone(), ThrottlePolicy::default());
    let settings = HolderSettings {
        clients: vec![ClientSettings {
            client_id: CLIENT_ID.into(),
            name: "New Plan".into(),
            redirect_uris: vec!["https://new-plan.example/oauth/callback".into()],
            secret: Some(CLIENT_SECRET.into()),
            jwks: None,
            jwks_url: None,
            scopes: baton_holder::settings::default_client_scopes(),
        }],
        ..Default::default()
    };
    // The holder thinks it lives at the proxy's address: its links and endpoints point there.
    let holder = Holder::new(
        holder_store.clone(),
        holder_accounts.clone(),
        "Riverbend Health Plan".into(),
        &Url::parse(&proxy_base).unwrap(),
        settings,
        signing_key(),
    );
    holder.register_clients().await.unwrap();
    let member = baton_synth::demo_members("rb").into_iter().find(|m| m.given == setup.member).unwrap();
    let holder_account = holder_accounts
        .create_member(NewMember {
            username: Username::parse("member").unwrap(),
            display_name: format!("{} {}", member.given, member.family),
            password: Some(NewPassword::parse("a member password").unwrap()),
            member_id: member.member_id.clone(),
            birth_date: member.birth_date,
            coverage_start: date!(2020 - 01 - 01),
        })
        .await
        .unwrap();
    holder_store.set_account_patient(holder_account.id, &member.patient_id).await.unwrap();
    let mut options = Options::new(Payer {
        organization_id: "riverbend".into(),
        name: "Riverbend Health Plan".into(),
        identifier_system: "https://riverbend.example".into(),
    });
    options.target_resources = setup.target_resources;
    options.financial_claims = setup.financial;
    let fhir_base_holder = holder.urls.fhir_base.clone();
    baton_records::load(
        &holder_store,
        baton_synth::record(&member, &options),
        &fhir_base_holder,
        Some(holder_account.id),
    )
    .await
    .unwrap();

    // Tokens as the holder would issue them after the member's approval.
    let now = Timestamp::now();
    let grant = OAuthGrant {
        id: "grant-1".into(),
        client_id: CLIENT_ID.into(),
        account_id: holder_account.id,
        patient_id: member.patient_id.clone(),
        scope: setup.scope.into(),
        include_sensitive: true,
        created_at: now.millis(),
        revoked_at: None,
    };
    holder_store.insert_oauth_grant(&grant).await.unwrap();
    let (access, refresh) = ("initial-access-token", "initial-refresh-token");
    holder_store
        .insert_oauth_token(
            &hash(access),
            "grant-1",
            TokenKind::Access,
            setup.scope,
            now,
            now.plus(time::Duration::hours(1)),
        )
        .await
        .unwrap();
    holder_store
        .insert_oauth_token(
            &hash(refresh),
            "grant-1",
            TokenKind::Refresh,
            setup.scope,
            now,
            now.plus(time::Duration::days(90)),
        )
        .await
        .unwrap();

    let holder_router = holder.router().layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
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
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let account = accounts
        .create_member(NewMember {
            username: Username::parse("maria").unwrap(),
            display_name: format!("{} {}", member.given, member.family),
            password: Some(NewPassword::parse("a member password").unwrap()),
            member_id: "NEW-1".into(),
            birth_date: member.birth_date,
            coverage_start: date!(2026 - 01 - 01),
        })
        .await
        .unwrap();
    let cipher = TokenCipher::new(&KEY);
    store
        .insert_consent(&MemberConsent {
            id: "consent-1".into(),
            member_account: account.id,
            payer_id: "riverbend".into(),
            policy: if setup.include_sensitive { "sensitive".into() } else { "regular".into() },
            period_start: now.millis() - 60_000,
            period_end: now.millis() + 90 * 86_400_000,
            given_at: now.millis(),
            channel: "web".into(),
            resource: "{}".into(),
            withdrawn_at: None,
            created_at: now.millis(),
        })
        .await
        .unwrap();
    let fhir_base = format!("{proxy_base}fhir");
    let link = PayerLink {
        id: "link-1".into(),
        member_account: account.id,
        payer_id: "riverbend".into(),
        consent_id: Some("consent-1".into()),
        fhir_base: fhir_base.clone(),
        patient_id: Some(member.patient_id.clone()),
        scope: setup.scope.into(),
        include_sensitive: setup.include_sensitive,
        access_token: Some(cipher.seal(access).unwrap()),
        access_expires_at: Some(now.millis() + 3_600_000),
        refresh_token: Some(cipher.seal(refresh).unwrap()),
        id_token: None,
        state: "active".into(),
        created_at: now.millis(),
        updated_at: now.millis(),
    };
    store.insert_link(&link).await.unwrap();

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
        fhir_base,
        member: account.id,
        link,
        source_patient: member.patient_id,
        _dirs: dirs,
    }
}

impl World {
    /// Queues a transfer and runs the engine until it ends.
    pub async fn transfer(&self, id: &str) -> baton_transfer::JobEnd {
        self.store.enqueue_transfer(id, &self.link, "full", None, Timestamp::now()).await.unwrap();
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

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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
                    "subject": {"reference": "Patient/whoever"}, "unknownElement": {"kept": true}}}));
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
