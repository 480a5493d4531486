//! The new plan's side of the SMART flow against a recording stand-in for a previous plan's
//! authorization server: what the authorization URL carries, what the token request sends,
//! and what the callback refuses before any token request is made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use baton_journey::{
    AuthorizationErrorCode, CallbackError, CallbackParams, ConfiguredPayer, Directory, Discovery, DiscoveryError,
    Inner, Journey, JourneyError, Payer, PinnedError,
};
use baton_store::{NewAccount, ResourceWrite, Store, Timestamp, TransferPage};
use baton_transfer::{ClientAuth, PayerCredentials, PayerDirectory, TokenCipher};
use baton_vocab::SensitiveSharing;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// What the stand-in saw and how it answers.
#[derive(Default)]
struct Recorded {
    token_requests: Vec<(HeaderMap, HashMap<String, String>)>,
    token_answer: Option<Value>,
    s256: bool,
    /// The brands file it publishes: (ETag, body).
    brands: Option<(String, String)>,
    /// RFC 7009 revocation requests: (headers, form).
    revocations: Vec<(HeaderMap, HashMap<String, String>)>,
}

type Shared = Arc<Mutex<Recorded>>;

async fn smart_configuration(State(shared): State<Shared>) -> Json<Value> {
    let methods = if shared.lock().unwrap().s256 { json!(["S256"]) } else { json!(["plain"]) };
    Json(json!({
        "authorization_endpoint": "https://old-plan.example/authorize",
        "token_endpoint": "token",
        "capabilities": ["launch-standalone", "permission-v2", "permission-offline"],
        "code_challenge_methods_supported": methods,
        "revocation_endpoint": "revoke"
    }))
}

async fn revoke(State(shared): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> StatusCode {
    shared.lock().unwrap().revocations.push((headers, form));
    StatusCode::OK
}

async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut recorded = shared.lock().unwrap();
    recorded.token_requests.push((headers, form));
    match recorded.token_answer.clone() {
        Some(answer) => (StatusCode::OK, Json(answer)),
        None => (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "code used"}))),
    }
}

async fn brands_file(State(shared): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    let Some((etag, body)) = shared.lock().unwrap().brands.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([("etag", etag), ("content-type", "application/fhir+json".into())], body).into_response()
}

/// A User-access Brands Bundle listing one plan per FHIR base.
fn brands_bundle_of(bases: &[&str]) -> String {
    let mut entries = vec![];
    for (n, base) in bases.iter().enumerate() {
        entries.push(json!({"resource": {"resourceType": "Organization", "id": format!("org{n}"),
            "name": format!("Plan {n}"), "endpoint": [{"reference": format!("Endpoint/ep{n}")}]}}));
        entries.push(json!({"resource": {"resourceType": "Endpoint", "id": format!("ep{n}"), "status": "active",
            "connectionType": {"code": "hl7-fhir-rest"}, "address": base}}));
    }
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

struct OldPlan {
    base: Url,
    shared: Shared,
}

async fn old_plan() -> OldPlan {
    let shared: Shared = Arc::new(Mutex::new(Recorded { s256: true, ..Recorded::default() }));
    let router = Router::new()
        .route("/fhir/.well-known/smart-configuration", get(smart_configuration))
        .route("/fhir/token", post(token))
        .route("/fhir/revoke", post(revoke))
        .route("/brands.json", get(brands_file))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    OldPlan { base: Url::parse(&format!("http://{addr}/fhir")).unwrap(), shared }
}

fn payer(base: &Url, auth: ClientAuth) -> Payer {
    Payer {
        id: "riverbend".into(),
        name: "Riverbend Health Plan".into(),
        aliases: vec![],
        states: vec!["IL".into()],
        logo_url: None,
        fhir_base: base.clone(),
        authorize_url: None,
        token_url: None,
        scopes: None,
        credentials: PayerCredentials {
            client_id: "cedar-valley".into(),
            auth,
            token_url: None,
            name: "Riverbend Health Plan".into(),
            backend: None,
        },
    }
}

fn journey(store: Store, payer: Payer) -> Journey {
    journey_with(store, vec![payer.into()], BTreeMap::new())
}

fn journey_with(store: Store, configured: Vec<ConfiguredPayer>, credentials: BTreeMap<String, ClientAuth>) -> Journey {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Journey::new(Inner {
        store,
        cipher: TokenCipher::new(&[7; 32]),
        discovery: Discovery::new(http.clone(), Duration::from_secs(60)),
        http,
        payers: Directory::new(configured, credentials),
        redirect_uri: Url::parse("https://new-plan.example/oauth/callback").unwrap(),
        local_base: "https://new-plan.example".into(),
        plan_name: "Cedar Valley Health".into(),
        identifiers: vec![],
        // The test's brands file is served on loopback.
        allow_private_brands: true,
    })
}

async fn member(store: &Store) -> baton_store::AccountId {
    store
        .insert_account(&NewAccount {
            username: "maria".into(),
            display_name: "Maria Garcia".into(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            member_id: Some("CVH-1".into()),
            birth_date: Some(baton_vocab::day::parse("1984-03-12").expect("a date")),
            // The time to bring records runs until 90 days after coverage starts.
            coverage_start: Some(time::OffsetDateTime::now_utc().date()),
            ..NewAccount::default()
        })
        .await
        .unwrap()
}

/// The member goes through consent ("exclude") and authorization at the stand-in.
async fn authorized(journey: &Journey, member: baton_store::AccountId) -> baton_journey::Connected {
    authorized_at(journey, member, "riverbend").await
}

async fn authorized_at(journey: &Journey, member: baton_store::AccountId, payer: &str) -> baton_journey::Connected {
    let (_, pending) = journey.start(payer, false, Timestamp::now()).await.unwrap();
    journey.finish(member, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now()).await.unwrap()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn callback(code: Option<&str>, state: Option<&str>) -> CallbackParams {
    CallbackParams { code: code.map(Into::into), state: state.map(Into::into), ..CallbackParams::default() }
}

#[tokio::test]
async fn the_authorization_url_carries_every_required_parameter() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store, payer(&old.base, ClientAuth::Secret("s3cret".into())));
        let (url, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        assert_eq!(url.origin().ascii_serialization(), "https://old-plan.example");
        assert_eq!(url.path(), "/authorize");
        let q = query(&url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cedar-valley");
        assert_eq!(q["redirect_uri"], "https://new-plan.example/oauth/callback");
        assert_eq!(q["aud"], old.base.as_str());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "launch/patient openid fhirUser offline_access patient/*.rs");
        // The challenge is the verifier kept in the session, hashed.
        let digest = Sha256::digest(pending.verifier.as_bytes());
        assert_eq!(q["code_challenge"], base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest));
        // The state is unpredictable (≥ 128 bits) and differs every time.
        assert_eq!(q["state"], pending.state);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&pending.state).unwrap();
        assert!(raw.len() >= 16, "{} bytes of state", raw.len());
        let (_, again) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        assert_ne!(again.state, pending.state);
        assert_ne!(again.verifier, pending.verifier);
        // The relative token endpoint resolves against the FHIR base.
        assert_eq!(pending.token_url, format!("{}/token", old.base));
    })
    .await;
}

#[tokio::test]
async fn a_plan_without_s256_is_refused() {
    let old = old_plan().await;
    old.shared.lock().unwrap().s256 = false;
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store, payer(&old.base, ClientAuth::Secret("s3cret".into())));
        let error = journey.start("riverbend", false, Timestamp::now()).await.unwrap_err();
        assert!(matches!(error, JourneyError::Discovery(DiscoveryError::NoS256)), "{error:?}");
        assert!(matches!(journey.start("nobody", false, Timestamp::now()).await, Err(JourneyError::UnknownPayer(_))));
    })
    .await;
}

/// Issue 16, item 1: the FHIR base describes another server (backend services: no S256, no
/// authorization endpoint of the member-facing product). With both endpoints pinned the pins
/// win; without pins the plan is "not set up", and the cause is in the audit log.
#[tokio::test]
async fn pinned_endpoints_are_not_vetoed_by_a_document_about_another_server() {
    let old = old_plan().await;
    old.shared.lock().unwrap().s256 = false;
    baton_store::testing::on_sqlite(move |store| async move {
        let mut pinned = payer(&old.base, ClientAuth::Secret("s3cret".into()));
        pinned.authorize_url = Some(Url::parse("https://login.old-plan.example/member/authorize").unwrap());
        pinned.token_url = Some(old.base.join("/fhir/token").unwrap());
        let journey = journey(store.clone(), pinned);
        let maria = member(&store).await;
        let (url, _) = journey.start_for(maria, "riverbend", false, Timestamp::now()).await.unwrap();
        assert_eq!(url.origin().ascii_serialization(), "https://login.old-plan.example");
        let q = query(&url);
        assert_eq!(q["code_challenge_method"], "S256", "PKCE S256 is sent whatever the document says");
        let report = journey.discovery.report("riverbend").unwrap();
        assert!(report.ignored.unwrap().contains("another authorization server"));
        assert!(!report.found.unwrap().s256, "what it said is kept for staff");

        let unpinned =
            journey_with(store.clone(), vec![payer(&old.base, ClientAuth::Secret("s".into())).into()], BTreeMap::new());
        let error = unpinned.start_for(maria, "riverbend", false, Timestamp::now()).await.unwrap_err();
        assert!(matches!(&error, JourneyError::Discovery(cause) if !cause.is_unreachable()), "{error:?}");
        let audit = store
            .search_audit(&baton_store::AuditQuery {
                action: Some(baton_journey::AUTHORIZATION_FAILED.into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].member_account, Some(maria.0));
        assert!(audit[0].detail.contains("S256"), "{}", audit[0].detail);

        // A FHIR base that publishes no SMART configuration at all (404) is "not set up" too:
        // trying again later will not help.
        let mut nowhere = payer(&old.base, ClientAuth::Secret("s".into()));
        nowhere.fhir_base = old.base.join("/no-fhir-here/").unwrap();
        let unpublished = journey_with(store.clone(), vec![nowhere.into()], BTreeMap::new());
        let error = unpublished.start_for(maria, "riverbend", false, Timestamp::now()).await.unwrap_err();
        assert!(
            matches!(&error, JourneyError::Discovery(cause @ DiscoveryError::NotPublished(said)) if !cause.is_unreachable() && said.contains("404")),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_code_is_redeemed_form_encoded_with_the_verifier_and_basic_auth() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer = Some(json!({
        "access_token": "access-abc", "token_type": "Bearer", "expires_in": 3600,
        "scope": "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Coverage.rs",
        "patient": "pat-1", "refresh_token": "refresh-xyz", "id_token": "id.token.sig"
    }));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s3cret".into())));
        let maria = member(&store).await;
        let (_, pending) = journey.start("riverbend", true, Timestamp::now()).await.unwrap();
        let connected = journey
            .finish(maria, Some(&pending), &callback(Some("the-code"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap();

        {
            let recorded = shared.lock().unwrap();
            assert_eq!(recorded.token_requests.len(), 1);
            let (headers, form) = &recorded.token_requests[0];
            assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
            let basic = base64::engine::general_purpose::STANDARD.encode("cedar-valley:s3cret");
            assert_eq!(headers["authorization"], format!("Basic {basic}"));
            assert_eq!(form["grant_type"], "authorization_code");
            assert_eq!(form["code"], "the-code");
            assert_eq!(form["code_verifier"], pending.verifier);
            assert_eq!(form["redirect_uri"], "https://new-plan.example/oauth/callback");
        }

        // Consent, link and transfer are recorded; the tokens are sealed, never in clear.
        let consent = store.consent(&connected.consent_id).await.unwrap().unwrap();
        assert_eq!(consent.policy, baton_vocab::ConsentPolicy::Sensitive);
        let resource: Value = serde_json::from_str(&consent.resource).unwrap();
        assert_eq!(resource["resourceType"], "Consent");
        assert!(resource["policy"][0]["uri"].as_str().unwrap().ends_with("#sensitive"));
        // Until 90 days after the coverage starts (today, for this member), and no later.
        let today = time::OffsetDateTime::now_utc().date();
        let end = (today + time::Duration::days(90)).to_string();
        assert_eq!(resource["provision"]["period"]["end"], end.as_str());
        assert_eq!(resource["provision"]["period"]["start"], today.to_string().as_str());
        let link = store.link(&connected.link_id).await.unwrap().unwrap();
        assert_eq!(link.patient_id.as_deref(), Some("pat-1"));
        assert_eq!(link.scope, "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Coverage.rs");
        assert!(link.include_sensitive);
        for sealed in [&link.access_token, &link.refresh_token, &link.id_token] {
            let sealed = sealed.as_deref().unwrap();
            assert!(!sealed.contains("access-abc") && !sealed.contains("refresh-xyz") && !sealed.contains("id.token"));
        }
        let cipher = TokenCipher::new(&[7; 32]);
        assert_eq!(
            cipher
                .open_for(
                    link.access_token.as_deref().unwrap(),
                    &baton_store::PayerLink::token_place(&link.id, "access")
                )
                .unwrap(),
            "access-abc"
        );
        assert_eq!(
            cipher
                .open_for(
                    link.refresh_token.as_deref().unwrap(),
                    &baton_store::PayerLink::token_place(&link.id, "refresh")
                )
                .unwrap(),
            "refresh-xyz"
        );
        let transfer = store.transfer(&connected.transfer_id).await.unwrap().unwrap();
        assert_eq!(transfer.state, baton_vocab::TransferState::Queued);
        assert_eq!(transfer.link_id, link.id);
    })
    .await;
}

#[tokio::test]
async fn private_key_jwt_sends_a_signed_assertion_instead_of_a_secret() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    let shared = old.shared.clone();
    let pem = {
        use p384::pkcs8::{EncodePrivateKey, LineEnding};
        p384::SecretKey::random(&mut p384::elliptic_curve::rand_core::OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .to_string()
    };
    baton_store::testing::on_sqlite(move |store| async move {
        let auth = ClientAuth::PrivateKey { pem, algorithm: jsonwebtoken::Algorithm::ES384, kid: Some("k1".into()) };
        let journey = journey(store.clone(), payer(&old.base, auth));
        let maria = member(&store).await;
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        journey
            .finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap();
        let recorded = shared.lock().unwrap();
        let (headers, form) = &recorded.token_requests[0];
        assert!(headers.get("authorization").is_none());
        assert_eq!(form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        assert_eq!(form["code_verifier"], pending.verifier);
        let header = jsonwebtoken::decode_header(&form["client_assertion"]).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES384);
        assert_eq!(header.kid.as_deref(), Some("k1"));
    })
    .await;
}

#[tokio::test]
async fn a_wrong_or_missing_state_makes_no_token_request() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "patient": "p"}));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        let now = Timestamp::now();
        let tampered = format!("{}x", pending.state);
        for params in [callback(Some("c"), Some(&tampered)), callback(Some("c"), None)] {
            let error = journey.finish(maria, Some(&pending), &params, now).await.unwrap_err();
            assert!(matches!(error, JourneyError::Callback(CallbackError::StateMismatch)), "{error:?}");
        }
        let error = journey.finish(maria, None, &callback(Some("c"), Some(&pending.state)), now).await.unwrap_err();
        assert!(matches!(error, JourneyError::Callback(CallbackError::NoPendingAuthorization)), "{error:?}");
        // Too late: the member started over an hour ago.
        let late = Timestamp::from_millis(now.millis() + 3_600_000);
        let error =
            journey.finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), late).await.unwrap_err();
        assert!(matches!(error, JourneyError::Callback(CallbackError::Expired)), "{error:?}");
        assert!(shared.lock().unwrap().token_requests.is_empty());
        assert!(store.links_of(maria).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn after_90_days_of_coverage_no_permission_is_taken_and_no_token_asked_for() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "patient": "p"}));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let today = time::OffsetDateTime::now_utc().date();
        let started = today - time::Duration::days(91);
        let late = store
            .insert_account(&NewAccount {
                username: "late".into(),
                display_name: "Late Joiner".into(),
                roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
                member_id: Some("CVH-2".into()),
                birth_date: Some(baton_vocab::day::parse("1970-01-01").expect("a date")),
                coverage_start: Some(started),
                ..NewAccount::default()
            })
            .await
            .unwrap();
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        let error = journey
            .finish(late, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap_err();
        let ended = today - time::Duration::days(1);
        assert!(matches!(error, JourneyError::WindowClosed { ended: e } if e == ended), "{error:?}");
        assert!(shared.lock().unwrap().token_requests.is_empty());
        assert!(store.links_of(late).await.unwrap().is_empty());
        assert!(store.consents_of(late).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn refusals_and_token_errors_are_told_apart() {
    let old = old_plan().await;
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        let now = Timestamp::now();
        for (code, expected) in [
            ("access_denied", AuthorizationErrorCode::AccessDenied),
            ("invalid_scope", AuthorizationErrorCode::InvalidScope),
            ("temporarily_unavailable", AuthorizationErrorCode::TemporarilyUnavailable),
            ("made_up", AuthorizationErrorCode::Other),
        ] {
            let params = CallbackParams {
                error: Some(code.into()),
                state: Some(pending.state.clone()),
                ..CallbackParams::default()
            };
            match journey.finish(maria, Some(&pending), &params, now).await {
                Err(JourneyError::Callback(CallbackError::Refused { code, .. })) => assert_eq!(code, expected),
                other => panic!("{other:?}"),
            }
        }
        assert!(shared.lock().unwrap().token_requests.is_empty());
        // The token endpoint refuses the code.
        let error =
            journey.finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), now).await.unwrap_err();
        assert!(
            matches!(&error, JourneyError::Callback(CallbackError::TokenRefused(m)) if m.contains("invalid_grant")),
            "{error:?}"
        );
        // Patient scopes granted without a patient.
        shared.lock().unwrap().token_answer =
            Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs"}));
        let error =
            journey.finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), now).await.unwrap_err();
        assert!(matches!(error, JourneyError::Callback(CallbackError::NoPatient)), "{error:?}");
        assert!(store.links_of(maria).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn withdrawal_stops_the_transfer_and_can_delete_what_arrived() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let connected = authorized(&journey, maria).await;
        // Someone else cannot withdraw it.
        let other = store
            .insert_account(&NewAccount {
                username: "james".into(),
                roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
                ..NewAccount::default()
            })
            .await
            .unwrap();
        assert!(matches!(
            journey.withdraw(other, &connected.consent_id, true, Timestamp::now()).await,
            Err(JourneyError::UnknownConsent)
        ));
        let withdrawal = journey.withdraw(maria, &connected.consent_id, true, Timestamp::now()).await.unwrap();
        assert!(withdrawal.withdrawn);
        let transfer = store.transfer(&connected.transfer_id).await.unwrap().unwrap();
        assert_eq!(transfer.state, baton_vocab::TransferState::Cancelled);
        let link = store.link(&connected.link_id).await.unwrap().unwrap();
        assert!(link.access_token.is_none() && link.refresh_token.is_none());
        let consent = store.consent(&connected.consent_id).await.unwrap().unwrap();
        assert!(consent.withdrawn_at.is_some());
        // Twice is harmless.
        assert!(!journey.withdraw(maria, &connected.consent_id, false, Timestamp::now()).await.unwrap().withdrawn);
    })
    .await;
}

#[tokio::test]
async fn a_plan_that_refuses_the_wildcard_scope_is_asked_once_more_per_type() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let (_, pending) = journey.start("riverbend", true, Timestamp::now()).await.unwrap();
        assert!(pending.requested_scope.contains("patient/*."), "{}", pending.requested_scope);
        let refused = |state: &str| CallbackParams {
            error: Some("invalid_scope".into()),
            state: Some(state.into()),
            ..CallbackParams::default()
        };
        // Not for a callback that is not this authorization's.
        assert!(journey.per_type_retry(&pending, &refused("forged")).await.is_none());
        let (url, retry) = journey.per_type_retry(&pending, &refused(&pending.state)).await.expect("asked again");
        let scope = query(&url).remove("scope").unwrap();
        assert!(scope.contains("patient/ExplanationOfBenefit.read") && scope.contains("patient/Coverage.read"), "{scope}");
        assert!(!scope.contains('*'), "{scope}");
        assert_eq!(query(&url).get("state"), Some(&retry.state));
        assert_ne!(retry.state, pending.state, "a new state");
        assert_eq!((retry.include_sensitive, retry.consent_given_at), (true, pending.consent_given_at), "the member's choice kept");
        // Refused again: no loop.
        assert!(journey.per_type_retry(&retry, &refused(&retry.state)).await.is_none());
        // Another refusal is not retried.
        let denied = CallbackParams { error: Some("access_denied".into()), ..refused(&pending.state) };
        assert!(journey.per_type_retry(&pending, &denied).await.is_none());
    })
    .await;
}

/// Issue 16's tolerance suite, token side: a token response with only the token and the
/// patient — no `scope` (the requested scope is assumed, RFC 6749 §5.1), no `expires_in`, no
/// refresh token — still connects, and what was assumed is what the pull is planned from.
#[tokio::test]
async fn a_bare_token_response_connects_with_the_requested_scope() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer = Some(json!({"access_token": "a", "token_type": "Bearer", "patient": "p"}));
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        let connected = journey
            .finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap();
        let link = store.link(&connected.link_id).await.unwrap().unwrap();
        assert_eq!(link.scope, pending.requested_scope);
        assert!(link.refresh_token.is_none() && link.access_expires_at.is_none());
    })
    .await;
}

#[tokio::test]
async fn withdrawal_ends_the_access_at_the_old_plan_too() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer = Some(json!({"access_token": "a", "refresh_token": "the-refresh-token",
        "token_type": "Bearer", "scope": "patient/*.rs offline_access", "patient": "p"}));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s&cret".into())));
        let maria = member(&store).await;
        let connected = authorized(&journey, maria).await;
        assert!(journey.withdraw(maria, &connected.consent_id, false, Timestamp::now()).await.unwrap().withdrawn);
        let revocations = shared.lock().unwrap().revocations.clone();
        assert_eq!(revocations.len(), 1, "the old plan was asked once");
        let (headers, form) = &revocations[0];
        assert_eq!(form.get("token").map(String::as_str), Some("the-refresh-token"));
        assert_eq!(form.get("token_type_hint").map(String::as_str), Some("refresh_token"));
        let basic = headers.get("authorization").unwrap().to_str().unwrap();
        let decoded = String::from_utf8(base64::Engine::decode(&base64::prelude::BASE64_STANDARD, &basic[6..]).unwrap()).unwrap();
        assert_eq!(decoded, "cedar-valley:s%26cret", "client_secret_basic, form-encoded (RFC 6749 §2.3.1)");
        let events = store.transfer_events(&connected.transfer_id).await.unwrap();
        let ended = events.iter().find(|e| e.kind == baton_vocab::EventKind::AccessEnded).expect("recorded");
        assert!(ended.detail.contains("agreed"), "{}", ended.detail);
        // A second withdrawal asks nothing more.
        journey.withdraw(maria, &connected.consent_id, false, Timestamp::now()).await.unwrap();
        assert_eq!(shared.lock().unwrap().revocations.len(), 1);
    })
    .await;
}

/// What a transfer stores, as the engine commits it (under the permission its link has):
/// `received` records from the previous plan and one of this plan's own (which deleting what
/// arrived leaves).
async fn arrive(store: &Store, transfer: &str, member: baton_store::AccountId, received: usize) {
    let ids: Vec<String> = (0..received).map(|n| format!("{transfer}-c{n}")).collect();
    arrive_records(store, transfer, member, &ids).await;
}

async fn arrive_records(store: &Store, transfer: &str, member: baton_store::AccountId, ids: &[String]) {
    let now = Timestamp::now();
    let lease = Timestamp::from_millis(now.millis() + 60_000);
    let claimed = store.claim_transfer("w", lease, now).await.unwrap().unwrap();
    assert_eq!(claimed.id, transfer);
    let write = |resource_type: &str, id: String, from_previous_plan: bool| ResourceWrite {
        resource_type: resource_type.into(),
        id: id.clone(),
        member_account: Some(member),
        patient_id: Some("p".into()),
        source_system: from_previous_plan.then(|| "https://old-plan.example/fhir".into()),
        source_id: from_previous_plan.then(|| id.clone()),
        security: vec![],
        sensitive: false,
        date_start: None,
        date_end: None,
        identifiers: vec![],
        references: vec![],
        body: json!({"resourceType": resource_type, "id": id}),
    };
    let mut resources: Vec<ResourceWrite> = ids.iter().map(|id| write("Condition", id.clone(), true)).collect();
    resources.push(write("Organization", format!("{transfer}-this-plan"), false));
    let link = store.link(&claimed.link_id).await.unwrap().unwrap();
    let page = TransferPage {
        transfer_id: transfer.into(),
        owner: "w".into(),
        lease_until: lease,
        resources,
        checkpoint: "{}".into(),
        progress: "{}".into(),
        pages_done: 1,
        permission: link.consent_id,
        ..TransferPage::default()
    };
    store.commit_transfer_page(page).await.unwrap();
    store.finish_transfer(transfer, "w", baton_vocab::TransferState::Completed, None, Timestamp::now()).await.unwrap();
}

#[tokio::test]
async fn deleting_what_arrived_removes_each_transfers_received_records_and_says_how_many() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let connected = authorized(&journey, maria).await;
        let first = connected.transfer_id.clone();
        arrive(&store, &first, maria, 3).await;
        let link = store.link(&connected.link_id).await.unwrap().unwrap();
        store.enqueue_transfer("second", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
        arrive(&store, "second", maria, 2).await;

        let withdrawal = journey.withdraw(maria, &connected.consent_id, true, Timestamp::now()).await.unwrap();
        assert!(withdrawal.withdrawn);
        assert_eq!(withdrawal.deleted, 5);
        for (transfer, received) in [(first.as_str(), 3), ("second", 2)] {
            for n in 0..received {
                let id = format!("{transfer}-c{n}");
                assert!(store.read_resource("Condition", &id).await.unwrap().is_none(), "{id} deleted");
            }
            let own = format!("{transfer}-this-plan");
            assert!(store.read_resource("Organization", &own).await.unwrap().is_some(), "{own} kept");
            let events = store.transfer_events(transfer).await.unwrap();
            let deleted: Vec<&str> = events
                .iter()
                .filter(|e| e.kind == baton_vocab::EventKind::Deleted)
                .map(|e| e.detail.as_str())
                .collect();
            assert_eq!(deleted, [format!("{received} records, at the member's request")], "{transfer}");
        }
    })
    .await;
}

/// Issue 22, defect 2: what the previous plan said of sensitive information (Baton's own
/// holder says it in the token response) is kept with the link; a plan that says nothing
/// leaves it unknown, and the page says so rather than "nothing was left out".
#[tokio::test]
async fn what_the_previous_plan_said_of_sensitive_information_is_kept() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        for (said, kept) in [
            (Some("excluded"), Some(SensitiveSharing::Excluded)),
            (Some("included"), Some(SensitiveSharing::Included)),
            (None, None),
            (Some("perhaps"), None),
        ] {
            let mut answer =
                json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"});
            if let Some(said) = said {
                answer["sensitive_data"] = json!(said);
            }
            old.shared.lock().unwrap().token_answer = Some(answer);
            let connected = authorized(&journey, maria).await;
            let link = store.link(&connected.link_id).await.unwrap().unwrap();
            assert_eq!(link.source_sensitive, kept, "{said:?}");
            let view = journey.member_transfer(maria, &connected.transfer_id).await.unwrap().unwrap();
            assert_eq!(view.source_sensitive, kept);
        }
    })
    .await;
}

/// Issue 22, defect 1: Maria brought her records three times; withdrawing the third permission
/// with "delete what arrived" deleted everything, the first (still active) permission's records
/// too, since a re-pull moves each record's `origin_transfer` to the latest transfer. (Bringing
/// again from one plan now replaces the permission; two plans that hold the same records — a
/// plan and its affiliate on one server — still give two permissions in force.)
#[tokio::test]
async fn withdrawing_one_permission_never_deletes_what_another_permission_brought() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    baton_store::testing::on_sqlite(move |store| async move {
        let mut affiliate = payer(&old.base, ClientAuth::Secret("s".into()));
        affiliate.id = "riverbend-affiliate".into();
        let plans = vec![payer(&old.base, ClientAuth::Secret("s".into())).into(), affiliate.into()];
        let journey = journey_with(store.clone(), plans, BTreeMap::new());
        let maria = member(&store).await;
        let same: Vec<String> = (0..4).map(|n| format!("claim-{n}")).collect();
        let mut permissions = vec![];
        for (round, plan) in ["riverbend", "riverbend-affiliate", "riverbend-affiliate"].into_iter().enumerate() {
            let connected = authorized_at(&journey, maria, plan).await;
            // Each pull brings the same four records; the third also brings one that is new.
            let mut ids = same.clone();
            if round == 2 {
                ids.push("claim-new".into());
            }
            arrive_records(&store, &connected.transfer_id, maria, &ids).await;
            permissions.push(connected);
        }
        let third = &permissions[2];
        let preview = journey.withdrawal_preview(maria, &third.transfer_id).await.unwrap().unwrap();
        assert_eq!((preview.deleted, preview.kept), (1, 4), "what the confirmation page says");
        assert_eq!(preview.deleted_by_kind, [("conditions".to_owned(), 1)]);

        let withdrawal = journey.withdraw(maria, &third.consent_id, true, Timestamp::now()).await.unwrap();
        assert_eq!((withdrawal.deleted, withdrawal.kept), (preview.deleted, preview.kept), "as the preview said");
        assert!(store.read_resource("Condition", "claim-new").await.unwrap().is_none());
        for id in &same {
            assert!(store.read_resource("Condition", id).await.unwrap().is_some(), "{id}: the first permission's");
        }
        let view = journey.member_transfer(maria, &third.transfer_id).await.unwrap().unwrap();
        assert!(view.consent_withdrawn);
        let deletion = view.deletion.expect("the page says what was deleted");
        assert_eq!((deletion.deleted, deletion.kept), (1, 4));
        let untouched = journey.member_transfer(maria, &permissions[0].transfer_id).await.unwrap().unwrap();
        assert!(!untouched.consent_withdrawn && untouched.deletion.is_none());
        let replaced = store.consent(&permissions[1].consent_id).await.unwrap().unwrap();
        assert_eq!(replaced.replaced_by.as_deref(), Some(third.consent_id.as_str()), "the affiliate's second replaced its first");
    })
    .await;
}

#[tokio::test]
async fn a_brands_file_that_changed_is_loaded_again_and_plans_it_dropped_are_no_longer_offered() {
    let old = old_plan().await;
    let (north, south) = ("https://north.example/fhir", "https://south.example/fhir");
    old.shared.lock().unwrap().brands = Some(("\"v1\"".into(), brands_bundle_of(&[north, south])));
    let shared = old.shared.clone();
    let url = old.base.join("/brands.json").unwrap();
    let credentials = BTreeMap::from([("shared".to_owned(), ClientAuth::Secret("s".into()))]);
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey_with(store.clone(), vec![], credentials);
        let first = journey.import_brands_url(&url, Timestamp::from_millis(1)).await.unwrap();
        assert_eq!((first.entries, first.added, first.withdrawn, first.not_modified), (2, 2, 0, false));
        let id_of = |base: &'static str| {
            let store = store.clone();
            async move { store.payer_entries().await.unwrap().into_iter().find(|e| e.fhir_base == base).unwrap().id }
        };
        let south_id = id_of(south).await;
        journey.register_payer(&south_id, Some("me"), Some("shared"), true, Timestamp::from_millis(2)).await.unwrap();
        assert!(journey.payers.get(&south_id).is_some(), "registered: offered");

        // Unchanged: 304, nothing applied.
        let again = journey.import_brands_url(&url, Timestamp::from_millis(3)).await.unwrap();
        assert!(again.not_modified);

        // The file changes (a new ETag) and no longer lists South.
        shared.lock().unwrap().brands = Some(("\"v2\"".into(), brands_bundle_of(&[north])));
        let changed = journey.import_brands_url(&url, Timestamp::from_millis(4)).await.unwrap();
        assert_eq!((changed.entries, changed.added, changed.withdrawn, changed.not_modified), (1, 0, 1, false));
        assert!(journey.payers.get(&south_id).is_none(), "no longer offered to members");
        assert!(journey.payers.known(&south_id).is_some(), "transfers it authorized run on");
        let source = store.brand_source(url.as_str()).await.unwrap().unwrap();
        assert_eq!(source.etag.as_deref(), Some("\"v2\""));
        assert_eq!(source.changed_at, 4);
        assert!(source.status.contains("1 no longer listed"), "{}", source.status);

        // Listed again: offered again, as registered before.
        shared.lock().unwrap().brands = Some(("\"v3\"".into(), brands_bundle_of(&[north, south])));
        let back = journey.import_brands_url(&url, Timestamp::from_millis(5)).await.unwrap();
        assert_eq!((back.added, back.withdrawn), (0, 0));
        assert!(journey.payers.get(&south_id).is_some());
    })
    .await;
}

#[tokio::test]
async fn a_configured_plan_switched_off_is_not_offered_and_starts_no_authorization() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s3cret".into())));
        let maria = member(&store).await;
        // An authorization on its way when an admin switches the plan off.
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        assert!(journey.set_configured_payer_enabled("riverbend", Some(false), Timestamp::now()).await.unwrap());

        assert!(journey.payers.all().is_empty(), "not in the member's picker");
        assert!(journey.payers.search("river").is_empty(), "not searchable by name");
        assert!(journey.payers.search("IL").is_empty(), "nor by state");
        let error = journey.start("riverbend", false, Timestamp::now()).await.unwrap_err();
        assert!(matches!(&error, JourneyError::NotOffered(id) if id == "riverbend"), "{error:?}");
        assert!(error.to_string().contains("switched off"), "a clear error: {error}");
        let error = journey
            .finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap_err();
        assert!(matches!(error, JourneyError::NotOffered(_)), "{error:?}");
        assert!(shared.lock().unwrap().token_requests.is_empty(), "no token request for a plan switched off");
        // Transfers the member already authorized keep their credentials.
        assert_eq!(journey.payers.credentials("riverbend").map(|c| c.client_id), Some("cedar-valley".into()));
        // Unknown ids stay unknown; a brands entry cannot be switched here.
        assert!(!journey.set_configured_payer_enabled("nobody", Some(false), Timestamp::now()).await.unwrap());
        assert!(matches!(journey.start("nobody", false, Timestamp::now()).await, Err(JourneyError::UnknownPayer(_))));

        // Stored: a directory rebuilt from the store (another instance, a restart) agrees.
        let again = journey_with(
            store.clone(),
            vec![payer(&old.base, ClientAuth::Secret("s3cret".into())).into()],
            BTreeMap::new(),
        );
        again.payers.reload(&store).await.unwrap();
        assert!(again.payers.get("riverbend").is_none());

        // Back on: offered, and a fresh authorization completes.
        assert!(journey.set_configured_payer_enabled("riverbend", Some(true), Timestamp::now()).await.unwrap());
        let (_, pending) = journey.start("riverbend", false, Timestamp::now()).await.unwrap();
        journey
            .finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap();
        assert_eq!(shared.lock().unwrap().token_requests.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_plan_switched_off_in_configuration_can_be_switched_on_by_an_admin() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let off = ConfiguredPayer { payer: payer(&old.base, ClientAuth::Secret("s".into())), enabled: false };
        let journey = journey_with(store.clone(), vec![off], BTreeMap::new());
        journey.payers.reload(&store).await.unwrap();
        assert!(matches!(journey.start("riverbend", false, Timestamp::now()).await, Err(JourneyError::NotOffered(_))));
        journey.set_configured_payer_enabled("riverbend", Some(true), Timestamp::now()).await.unwrap();
        assert!(journey.start("riverbend", false, Timestamp::now()).await.is_ok(), "the override wins");
        let state = journey.payers.configured().remove(0);
        assert_eq!((state.enabled_in_config, state.enabled_override, state.enabled()), (false, Some(true), true));
        // Back to what configuration says.
        journey.set_configured_payer_enabled("riverbend", None, Timestamp::now()).await.unwrap();
        assert!(journey.payers.get("riverbend").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_change_made_on_another_instance_reaches_this_one() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let configured = || vec![ConfiguredPayer::from(payer(&old.base, ClientAuth::Secret("s".into())))];
        let here = journey_with(store.clone(), configured(), BTreeMap::new());
        here.payers.reload(&store).await.unwrap();
        assert!(!here.payers.refresh(&store).await.unwrap(), "nothing changed");
        // Another instance over the same database switches the plan off.
        let there = journey_with(store.clone(), configured(), BTreeMap::new());
        there.payers.reload(&store).await.unwrap();
        there.set_configured_payer_enabled("riverbend", Some(false), Timestamp::now()).await.unwrap();
        assert!(here.payers.get("riverbend").is_some(), "not read yet");
        // The running check picks it up.
        let watcher = tokio::spawn(here.payers.clone().keep_current(store.clone(), Duration::from_millis(50)));
        let mut waited = 0;
        while here.payers.get("riverbend").is_some() && waited < 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        assert!(here.payers.get("riverbend").is_none(), "switched off here too");
        assert!(matches!(here.start("riverbend", false, Timestamp::now()).await, Err(JourneyError::NotOffered(_))));
        watcher.abort();
        assert!(!here.payers.refresh(&store).await.unwrap(), "read in: nothing new");
    })
    .await;
}

/// A brands file listing one plan at `fhir_base`.
fn brands_bundle(fhir_base: &str) -> String {
    json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Organization", "id": "op", "name": "Old Plan Mutual",
                "endpoint": [{"reference": "Endpoint/r4"}]}},
            {"resource": {"resourceType": "Endpoint", "id": "r4", "status": "active",
                "connectionType": {"code": "hl7-fhir-rest"}, "address": fhir_base}}
        ]
    })
    .to_string()
}

/// A journey with no configured payer and one brands entry at `fhir_base`, registered and on.
async fn registered_brands_entry(store: &Store, fhir_base: &str) -> (Journey, String) {
    let credentials = BTreeMap::from([("shared".to_owned(), ClientAuth::Secret("s3cret".into()))]);
    let journey = journey_with(store.clone(), vec![], credentials);
    journey.import_brands_file("brands.json", &brands_bundle(fhir_base), Timestamp::now()).await.unwrap();
    let id = store.payer_entries().await.unwrap()[0].id.clone();
    assert!(journey.register_payer(&id, Some("cedar-valley"), Some("shared"), true, Timestamp::now()).await.unwrap());
    (journey, id)
}

#[tokio::test]
async fn a_brands_entry_without_discovery_uses_its_pinned_endpoints_and_scopes() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer = Some(json!({
        "access_token": "a", "token_type": "Bearer", "patient": "p",
        "scope": "launch/patient openid patient/ExplanationOfBenefit.read"
    }));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        // Nothing is published under this base (404): not set up, until endpoints are pinned.
        let fhir_base = format!("{}/elsewhere/fhir", old.base.origin().ascii_serialization());
        let (journey, id) = registered_brands_entry(&store, &fhir_base).await;
        let error = journey.start(&id, false, Timestamp::now()).await.unwrap_err();
        assert!(matches!(error, JourneyError::Discovery(DiscoveryError::NotPublished(_))), "{error:?}");

        let token_url = format!("{}/token", old.base);
        let scopes = "launch/patient openid  patient/ExplanationOfBenefit.read";
        let pinned = journey
            .pin_payer_endpoints(&id, "https://old-plan.example/pinned/authorize", &token_url, scopes, Timestamp::now())
            .await
            .unwrap();
        assert!(pinned);
        // A brands refresh keeps what the admin pinned.
        journey.import_brands_file("brands.json", &brands_bundle(&fhir_base), Timestamp::now()).await.unwrap();

        let (url, pending) = journey.start(&id, false, Timestamp::now()).await.unwrap();
        assert_eq!(url.origin().ascii_serialization(), "https://old-plan.example");
        assert_eq!(url.path(), "/pinned/authorize");
        let q = query(&url);
        assert_eq!(q["scope"], "launch/patient openid patient/ExplanationOfBenefit.read", "the scope override");
        assert_eq!(q["aud"], fhir_base);
        assert_eq!(pending.token_url, token_url);
        assert_eq!(pending.requested_scope, "launch/patient openid patient/ExplanationOfBenefit.read");
        // The code is redeemed at the pinned token endpoint; the engine refreshes there too.
        let maria = member(&store).await;
        journey
            .finish(maria, Some(&pending), &callback(Some("c"), Some(&pending.state)), Timestamp::now())
            .await
            .unwrap();
        assert_eq!(shared.lock().unwrap().token_requests.len(), 1);
        assert_eq!(journey.payers.credentials(&id).and_then(|c| c.token_url), Some(token_url.clone()));

        // Cleared: discovery again (and it fails here).
        journey.pin_payer_endpoints(&id, "", "", "", Timestamp::now()).await.unwrap();
        assert!(journey.start(&id, false, Timestamp::now()).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn pinned_values_win_over_discovery_as_in_configuration() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let (journey, id) = registered_brands_entry(&store, old.base.as_str()).await;
        // Without pins: discovery's endpoints and the v2 scopes its capabilities call for.
        let (url, pending) = journey.start(&id, false, Timestamp::now()).await.unwrap();
        assert_eq!(url.path(), "/authorize");
        assert_eq!(query(&url)["scope"], "launch/patient openid fhirUser offline_access patient/*.rs");
        assert_eq!(pending.token_url, format!("{}/token", old.base));

        journey
            .pin_payer_endpoints(
                &id,
                "https://auth.old-plan.example/v2/authorize",
                "",
                "patient/*.read openid",
                Timestamp::now(),
            )
            .await
            .unwrap();
        let (url, pending) = journey.start(&id, false, Timestamp::now()).await.unwrap();
        assert_eq!(url.host_str(), Some("auth.old-plan.example"), "the pinned authorization endpoint wins");
        assert_eq!(query(&url)["scope"], "patient/*.read openid", "the override replaces the chosen scopes");
        assert_eq!(pending.token_url, format!("{}/token", old.base), "the token endpoint still from discovery");
    })
    .await;
}

#[tokio::test]
async fn junk_pins_are_refused_with_the_reason_and_nothing_is_stored() {
    baton_store::testing::on_sqlite(move |store| async move {
        let (journey, id) = registered_brands_entry(&store, "https://fhir.old-plan.example/r4").await;
        let pin = |a: &'static str, t: &'static str, s: &'static str| {
            let journey = journey.clone();
            let id = id.clone();
            async move { journey.pin_payer_endpoints(&id, a, t, s, Timestamp::now()).await }
        };
        let refused = |result: Result<bool, JourneyError>| match result {
            Err(JourneyError::Pinned(error)) => error,
            other => panic!("not refused: {other:?}"),
        };
        let error = refused(pin("http://old-plan.example/authorize", "", "").await);
        assert_eq!(error.field(), "authorize_url");
        assert!(error.to_string().contains("must use https"), "{error}");
        assert_eq!(refused(pin("", "/token", "").await).field(), "token_url");
        assert_eq!(
            refused(pin("", "", "patient/*.read, openid").await),
            PinnedError::UnknownScope("patient/*.read,".into())
        );
        assert_eq!(refused(pin("", "", "openid offline_access").await), PinnedError::NoPatientData);
        let stored = store.payer_entries().await.unwrap().remove(0);
        assert_eq!((stored.authorize_url, stored.token_url, stored.scopes), (None, None, None));
        assert!(!journey.pin_payer_endpoints("brand-nobody", "", "", "", Timestamp::now()).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn an_opt_in_for_concurrent_coverage_lasts_the_plan_year_and_ends_with_its_withdrawal() {
    let old = old_plan().await;
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let now = Timestamp::now();
        let input = baton_journey::CoverageInput::parse("riverbend", "RB-77", None, None, true).unwrap();
        let choice = baton_journey::OptInChoice {
            include_sensitive: false,
            channel: baton_vocab::ConsentChannel::Phone,
            recorded_by: "staff.jordan".into(),
            at: now,
        };
        let coverage =
            journey.record_previous_coverage(maria, &input, Some(&choice), "staff.jordan", now).await.unwrap();
        assert_eq!(coverage.opt_in, baton_vocab::OptIn::In);
        assert!(coverage.next_request_at.is_some(), "due at once");
        let consent_id = coverage.consent_id.clone().unwrap();
        let consent = store.consent(&consent_id).await.unwrap().unwrap();
        // Coverage started today: the plan year ends the day before its anniversary.
        let today = time::OffsetDateTime::now_utc().date();
        let year_end = today.replace_year(today.year() + 1).unwrap_or(today).previous_day().unwrap();
        let resource: Value = serde_json::from_str(&consent.resource).unwrap();
        assert_eq!(resource["provision"]["period"]["end"], year_end.to_string(), "{resource}");

        // Withdrawing that permission, wherever the member does it, stops the asking.
        assert!(journey.withdraw(maria, &consent_id, false, Timestamp::now()).await.unwrap().withdrawn);
        let coverage = store.previous_coverage(&coverage.id).await.unwrap().unwrap();
        assert_eq!(coverage.opt_in, baton_vocab::OptIn::Out);
        assert_eq!(coverage.next_request_at, None);
        assert!(store.coverages_due("riverbend", Timestamp::now(), 10).await.unwrap().is_empty());
    })
    .await;
}

/// Issue 22, defect 7: bringing records again from the same plan refreshes the permission
/// instead of stacking another — the earlier one ends, replaced, its access at the plan ended,
/// and what it brought is the newer one's (withdrawing that deletes it all, as it says).
#[tokio::test]
async fn bringing_again_from_the_same_plan_replaces_the_permission() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer = Some(json!({"access_token": "a", "refresh_token": "r",
        "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    let shared = old.shared.clone();
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let first = authorized(&journey, maria).await;
        let ids: Vec<String> = (0..3).map(|n| format!("claim-{n}")).collect();
        arrive_records(&store, &first.transfer_id, maria, &ids).await;
        let second = authorized(&journey, maria).await;

        let earlier = store.consent(&first.consent_id).await.unwrap().unwrap();
        assert!(earlier.withdrawn_at.is_some(), "the earlier permission ended");
        assert_eq!(earlier.replaced_by.as_deref(), Some(second.consent_id.as_str()));
        assert!(store.consent(&second.consent_id).await.unwrap().unwrap().withdrawn_at.is_none());
        let link = store.link(&first.link_id).await.unwrap().unwrap();
        assert_eq!(link.state, baton_vocab::LinkState::Revoked);
        assert!(link.access_token.is_none() && link.refresh_token.is_none());
        assert_eq!(shared.lock().unwrap().revocations.len(), 1, "its access ended at the plan");

        let account = store.account_by_id(maria).await.unwrap().unwrap();
        let home = journey.member_home(&account).await.unwrap();
        assert_eq!(home.links.len(), 1);
        assert_eq!(home.links[0].transfer_id.as_deref(), Some(second.transfer_id.as_str()));
        assert!(home.links[0].earlier[0].replaced);

        let preview = journey.withdrawal_preview(maria, &second.transfer_id).await.unwrap().unwrap();
        assert_eq!((preview.deleted, preview.kept), (3, 0), "what the first brought goes with the one in force");
        journey.withdraw(maria, &second.consent_id, true, Timestamp::now()).await.unwrap();
        for id in &ids {
            assert!(store.read_resource("Condition", id).await.unwrap().is_none(), "{id}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_member_home_shows_one_card_per_plan_with_the_earlier_permissions_behind_it() {
    let old = old_plan().await;
    old.shared.lock().unwrap().token_answer =
        Some(json!({"access_token": "a", "token_type": "Bearer", "scope": "patient/*.rs", "patient": "p"}));
    baton_store::testing::on_sqlite(move |store| async move {
        let journey = journey(store.clone(), payer(&old.base, ClientAuth::Secret("s".into())));
        let maria = member(&store).await;
        let first = authorized(&journey, maria).await;
        // Withdrawn, then given again: the card shows the one in force, the withdrawn behind.
        journey.withdraw(maria, &first.consent_id, false, Timestamp::now()).await.unwrap();
        let second = authorized(&journey, maria).await;
        let account = store.account_by_id(maria).await.unwrap().unwrap();
        let home = journey.member_home(&account).await.unwrap();
        assert_eq!(home.links.len(), 1, "one card per plan: {:?}", home.links);
        let card = &home.links[0];
        assert!(!card.withdrawn);
        assert_eq!(card.transfer_id.as_deref(), Some(second.transfer_id.as_str()));
        assert!(card.given_on.is_some() && card.until.is_some() && !card.include_sensitive);
        assert_eq!(card.earlier.len(), 1);
        assert!(card.earlier[0].withdrawn && !card.earlier[0].replaced);
        assert_eq!(card.earlier[0].transfer_id.as_deref(), Some(first.transfer_id.as_str()));
    })
    .await;
}
