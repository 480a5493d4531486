//! A real data-holder Baton on a free port, with two synthetic members, two registered client
//! apps (one with a shared secret, one with keys), and helpers to walk the authorization flow
//! as a browser would.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_accounts::{Accounts, NewMember, NewPassword, ThrottlePolicy, Username};
use baton_holder::{ClientSettings, Holder, HolderSettings, SigningKey};
use baton_store::{AccountId, Store};
use baton_synth::{Options, Payer};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use url::Url;

pub const SECRET_CLIENT: &str = "new-plan";
pub const SECRET: &str = "a-long-shared-client-secret";
pub const KEY_CLIENT: &str = "key-plan";
/// Another plan's system (no redirect URIs): SMART Backend Services only.
pub const PAYER_CLIENT: &str = "other-plan-system";
pub const REDIRECT: &str = "https://new-plan.example/oauth/callback";
pub const PASSWORD: &str = "member password 1";
pub const ALL_SCOPES: &str = "launch/patient openid fhirUser offline_access patient/*.rs";

pub struct TestHolder {
    pub base: String,
    pub fhir: String,
    pub store: Store,
    pub holder: Holder,
    /// Client keys for private_key_jwt: (RS384 key, ES384 key).
    pub keys: Arc<ClientKeys>,
    /// Patient ids of the two members.
    pub maria: String,
    pub james: String,
}

pub struct ClientKeys {
    pub rsa: EncodingKey,
    pub ec: EncodingKey,
}

fn signing_key() -> SigningKey {
    static PEM: OnceLock<String> = OnceLock::new();
    SigningKey::from_pem(PEM.get_or_init(|| SigningKey::generate_pem().unwrap())).unwrap()
}

/// The client keys' public JWK Set (`rsa-1`, `ec-1`).
pub fn client_jwks() -> String {
    client_keys().1
}

fn client_keys() -> (Arc<ClientKeys>, String) {
    static KEYS: OnceLock<(Arc<ClientKeys>, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa_pem = SigningKey::generate_pem().unwrap();
        let ec_pem = {
            use p384::pkcs8::{EncodePrivateKey, LineEnding};
            p384::SecretKey::random(&mut p384::elliptic_curve::rand_core::OsRng)
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .to_string()
        };
        let rsa = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
        let ec = EncodingKey::from_ec_pem(ec_pem.as_bytes()).unwrap();
        let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS384).unwrap();
        rsa_jwk.common.key_id = Some("rsa-1".into());
        rsa_jwk.common.key_algorithm = Some(KeyAlgorithm::RS384);
        let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES384).unwrap();
        ec_jwk.common.key_id = Some("ec-1".into());
        ec_jwk.common.key_algorithm = Some(KeyAlgorithm::ES384);
        let jwks = serde_json::to_string(&JwkSet { keys: vec![rsa_jwk, ec_jwk] }).unwrap();
        (Arc::new(ClientKeys { rsa, ec }), jwks)
    })
    .clone()
}

/// Starts a holder over `store` (already migrated).
pub async fn start(store: Store) -> TestHolder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let (keys, jwks) = client_keys();
    let settings = HolderSettings {
        clients: vec![
            ClientSettings {
                client_id: SECRET_CLIENT.into(),
                name: "New Plan Baton".into(),
                redirect_uris: vec![REDIRECT.into()],
                secret: Some(SECRET.into()),
                jwks: None,
                jwks_url: None,
                scopes: baton_holder::settings::default_client_scopes(),
                identifiers: vec![],
            },
            ClientSettings {
                client_id: KEY_CLIENT.into(),
                name: "Key Plan".into(),
                redirect_uris: vec![REDIRECT.into()],
                secret: None,
                jwks: Some(jwks.clone()),
                jwks_url: None,
                scopes: baton_holder::settings::default_client_scopes(),
                identifiers: vec![],
            },
            ClientSettings {
                client_id: PAYER_CLIENT.into(),
                name: "Other Plan (Payer-to-Payer)".into(),
                redirect_uris: vec![],
                secret: None,
                jwks: Some(jwks.clone()),
                jwks_url: None,
                scopes: format!(
                    "system/*.rs {} {}",
                    baton_holder::oauth::client_credentials::MEMBER_MATCH_SCOPE,
                    baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE
                ),
                // The new plan of PDex's Consent example.
                identifiers: vec!["http://hl7.org/fhir/sid/us-npi|0123456789".into()],
            },
        ],
        // The old plan of PDex's Consent example.
        identifiers: vec!["http://hl7.org/fhir/sid/us-npi|9876543210".into()],
        ..Default::default()
    };
    let holder = Holder::new(
        store.clone(),
        accounts.clone(),
        "Riverbend Health".into(),
        &Url::parse(&base).unwrap(),
        settings,
        signing_key(),
    );
    holder.register_clients().await.unwrap();
    let fhir = holder.urls.fhir_base.clone();

    let payer = Payer {
        organization_id: "riverbend".into(),
        name: "Riverbend Health".into(),
        identifier_system: "https://riverbend.example".into(),
    };
    let mut patients = vec![];
    for member in baton_synth::demo_members("rb").into_iter().take(2) {
        let account = accounts
            .create_member(NewMember {
                username: Username::parse(&member.given.to_lowercase()).unwrap(),
                display_name: format!("{} {}", member.given, member.family),
                password: Some(NewPassword::parse(PASSWORD).unwrap()),
                member_id: member.member_id.clone(),
                birth_date: member.birth_date,
                coverage_start: member.birth_date,
            })
            .await
            .unwrap();
        store.set_account_patient(account.id, &member.patient_id).await.unwrap();
        let resources = baton_synth::record(&member, &Options::new(payer.clone()));
        let report = baton_records::load(&store, resources, &fhir, Some(AccountId(account.id.0))).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        patients.push(member.patient_id);
    }

    let router = holder.router().layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestHolder { base, fhir, store, holder, keys, maria: patients[0].clone(), james: patients[1].clone() }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// The query of an authorization request; `overrides` replace or (with `None`) drop params.
pub fn authorize_url(
    t: &TestHolder,
    client_id: &str,
    challenge: &str,
    scope: &str,
    overrides: &[(&str, Option<&str>)],
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("scope".into(), scope.into()),
        ("state".into(), "state-123".into()),
        ("aud".into(), t.fhir.clone()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (key, value) in overrides {
        params.retain(|(k, _)| k != key);
        if let Some(value) = value {
            params.push(((*key).into(), (*value).into()));
        }
    }
    format!("{}oauth/authorize?{}", t.base, serde_urlencoded::to_string(&params).unwrap())
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(response: &reqwest::Response) -> Vec<(String, String)> {
    let location = response.headers().get("location").expect("a redirect").to_str().unwrap();
    let url = Url::parse(location).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The hidden `request` id in a sign-in or consent page.
pub fn request_id(html: &str) -> String {
    let marker = "name=\"request\" value=\"";
    let start = html.find(marker).expect("a request id in the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Walks the whole browser flow (authorize, sign in, decide); returns the final redirect's params.
#[allow(clippy::too_many_arguments)]
pub async fn authorize_as(
    t: &TestHolder,
    browser: &reqwest::Client,
    username: &str,
    client_id: &str,
    challenge: &str,
    scope: &str,
    decision: &str,
    sensitive: &str,
) -> Vec<(String, String)> {
    let page = browser.get(authorize_url(t, client_id, challenge, scope, &[])).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let request = request_id(&html);
    if html.contains("action=\"/oauth/authorize/sign-in\"") {
        let signed = browser
            .post(format!("{}oauth/authorize/sign-in", t.base))
            .form(&[("request", request.as_str()), ("username", username), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), StatusCode::SEE_OTHER, "{}", signed.text().await.unwrap());
        let consent = browser.get(format!("{}oauth/authorize/consent?request={request}", t.base)).send().await.unwrap();
        assert_eq!(consent.status(), StatusCode::OK);
        if scope.contains("offline_access") {
            // The screen says when the app's access ends.
            let days = time::Duration::days(i64::from(t.holder.settings.refresh_token_days));
            let ends = baton_holder::pages::day_in_words(time::OffsetDateTime::now_utc().date() + days, "en");
            let html = consent.text().await.unwrap();
            assert!(html.contains(&format!("Access lasts until {ends}")), "{html}");
        }
    }
    let decided = browser
        .post(format!("{}oauth/authorize/decision", t.base))
        .form(&[("request", request.as_str()), ("decision", decision), ("sensitive", sensitive)])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    assert!(decided.headers()["location"].to_str().unwrap().starts_with(REDIRECT));
    location_params(&decided)
}

/// A token request authenticated with the shared secret.
pub async fn token_request(t: &TestHolder, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}oauth/token", t.base))
        .basic_auth(SECRET_CLIENT, Some(SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(response.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    (status, response.json().await.unwrap())
}

/// A code for `username`, exchanged: the token response.
pub async fn tokens_for(t: &TestHolder, username: &str, scope: &str, sensitive: &str) -> Value {
    tokens_in(t, &http(), username, scope, sensitive).await
}

/// [`tokens_for`] in `browser`, which stays signed in as `username`.
pub async fn tokens_in(t: &TestHolder, browser: &reqwest::Client, username: &str, scope: &str, sensitive: &str) -> Value {
    let pkce = pkce();
    let params = authorize_as(t, browser, username, SECRET_CLIENT, &pkce.challenge, scope, "approve", sensitive).await;
    let code = param(&params, "code").expect("a code").to_owned();
    let (status, body) = token_request(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A signed client assertion for the key client.
pub fn client_assertion(t: &TestHolder, alg: Algorithm, jti: &str, lifetime_secs: i64, audience: &str) -> String {
    client_assertion_for(t, KEY_CLIENT, alg, jti, lifetime_secs, audience)
}

/// A signed client assertion for `client` (the key client's keys).
pub fn client_assertion_for(
    t: &TestHolder,
    client: &str,
    alg: Algorithm,
    jti: &str,
    lifetime_secs: i64,
    audience: &str,
) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": client, "sub": client, "aud": audience, "jti": jti, "iat": now, "exp": now + lifetime_secs
    });
    let mut header = Header::new(alg);
    let key = match alg {
        Algorithm::RS384 => {
            header.kid = Some("rsa-1".into());
            &t.keys.rsa
        }
        _ => {
            header.kid = Some("ec-1".into());
            &t.keys.ec
        }
    };
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `client_credentials` for `client` with a fresh assertion.
pub async fn system_token(t: &TestHolder, client: &str, scope: &str) -> (StatusCode, Value) {
    system_token_signed(t, client, Algorithm::ES384, scope).await
}

/// `client_credentials` for `client` with a fresh assertion signed with the `alg` key.
pub async fn system_token_signed(t: &TestHolder, client: &str, alg: Algorithm, scope: &str) -> (StatusCode, Value) {
    let assertion =
        client_assertion_for(t, client, alg, &uuid::Uuid::new_v4().to_string(), 120, &format!("{}oauth/token", t.base));
    let response = http()
        .post(format!("{}oauth/token", t.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// GET on the FHIR API with a bearer token.
pub async fn fhir_get(t: &TestHolder, token: &str, path: &str) -> (StatusCode, Value) {
    let url = if path.starts_with("http") { path.to_owned() } else { format!("{}/{path}", t.fhir) };
    let response = http().get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A test with a holder over a fresh SQLite store, on a multi-thread runtime.
macro_rules! holder_test {
    ($name:ident, |$t:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            baton_store::testing::on_sqlite(|store| async move {
                let $t = start(store).await;
                $body
            })
            .await;
        }
    };
}
