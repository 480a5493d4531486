//! `/oauth/authorize`: check the request, have the member sign in with this plan's account,
//! show what the app asks for with the sensitive-data choice (PDex §pdex-111), then send the
//! member back to the app with a code — or with `access_denied`.
//!
//! An unknown client or an unregistered redirect URI never redirects (an error page is
//! shown instead); every other problem goes back to the app as an RFC 6749 §4.1.2.1 error
//! with the `state` it sent.

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use baton_accounts::{Account, AccountId, ClientIp, SESSION_ACCOUNT_KEY, SignInError};
use baton_fhir::reference::same_base;
use baton_fhir::smart::{Scope, Scopes};
use baton_store::{NewCode, OAuthGrant, Timestamp};
use rust_i18n::t;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;

use super::{random_token, token_hash};
use crate::Holder;
use crate::pages::{Chrome, ConsentPage, ErrorPage, Lang, SignInPage, render};

/// Session key of the authorization requests in progress (one per tab the member started).
const PENDING: &str = "holder.pending_authorizations";
/// The most requests kept in progress at once (the oldest goes first).
const PENDING_KEPT: usize = 5;
/// How long a member may take between the app's redirect and their decision.
const PENDING_TTL_MS: i64 = 30 * 60 * 1000;
/// How long an authorization code lives (SMART: short; here one minute).
pub const CODE_TTL_SECONDS: i64 = 60;

/// An authorization request that passed every check, waiting for the member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    /// What approval grants: the request, narrowed to what this client may have.
    pub scope: String,
    pub state: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    aud: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
}

/// The client address the server put into request extensions.
pub struct RemoteIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for RemoteIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RemoteIp(parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip)))
    }
}

/// `GET /oauth/authorize`
pub async fn start(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let plan = holder.plan_name.clone();
    let client = match query.client_id.as_deref() {
        // A suspended or removed app is unknown here.
        Some(id) => match holder.store.oauth_client(id).await {
            Ok(client) => client.filter(|c| c.state == baton_store::ClientState::Active),
            Err(error) => return server_error(&holder, lang, error),
        },
        None => None,
    };
    let Some(client) = client else {
        tracing::warn!(client_id = ?query.client_id, "authorization request from an unknown client");
        return error_page(
            &holder,
            lang,
            StatusCode::BAD_REQUEST,
            t!("error.unknown_client", locale = lang.code(), plan = plan),
        );
    };
    let Some(redirect_uri) = query.redirect_uri.clone().filter(|r| client.redirect_uris().any(|u| u == r)) else {
        tracing::warn!(client_id = %client.client_id, "authorization request with an unregistered redirect URI");
        return error_page(
            &holder,
            lang,
            StatusCode::BAD_REQUEST,
            t!("error.bad_redirect", locale = lang.code(), plan = plan),
        );
    };
    let state = query.state.clone();
    let fail = |error: &str, description: &str| redirect_error(&redirect_uri, error, description, state.as_deref());

    if query.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(state) = query.state.clone().filter(|s| !s.is_empty()) else {
        return fail("invalid_request", "state is required");
    };
    if query.code_challenge_method.as_deref() != Some("S256") {
        return fail("invalid_request", "PKCE is required, with code_challenge_method S256 (plain is not accepted)");
    }
    let challenge = query.code_challenge.clone().unwrap_or_default();
    if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return fail("invalid_request", "code_challenge must be a base64url SHA-256 digest");
    }
    if !query.aud.as_deref().is_some_and(|aud| same_base(aud, &holder.urls.fhir_base)) {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    let requested = Scopes::parse(query.scope.as_deref().unwrap_or(""));
    let scope = requested.grantable().within(&Scopes::parse(&client.scopes));
    if !scope.has_patient_data_scopes() && !scope.contains(&Scope::OpenId) {
        return fail("invalid_scope", "none of the requested scopes can be granted to this client");
    }

    let pending = Pending {
        id: random_token(),
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri,
        scope: scope.to_string(),
        state,
        code_challenge: challenge,
        nonce: query.nonce.clone(),
        created_at: Timestamp::now().millis(),
    };
    if let Err(error) = keep_pending(&session, &pending).await {
        return server_error(&holder, lang, error);
    }
    match signed_in_member(&holder, &session).await {
        Ok(Some(account)) => consent_page(&holder, lang, &pending, &account, None),
        Ok(None) => sign_in_page(&holder, lang, &pending, StatusCode::OK, None, ""),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    request: String,
    /// The app the request came from (for the way back when the request is no longer here).
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /oauth/authorize/sign-in`
pub async fn sign_in(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    RemoteIp(ip): RemoteIp,
    Form(form): Form<SignInForm>,
) -> Response {
    let Some(pending) = pending(&session, &form.request).await else {
        return expired(&holder, lang, form.client.as_deref()).await;
    };
    let message = |key: &str| -> String { t!(key, locale = lang.code()).into_owned() };
    let result = holder.accounts.sign_in(&form.username, &form.password, ip, Timestamp::now()).await;
    let account = match result {
        Ok(account) => account,
        Err(SignInError::InvalidCredentials) => {
            return sign_in_page(
                &holder,
                lang,
                &pending,
                StatusCode::UNAUTHORIZED,
                Some(message("sign_in.invalid")),
                &form.username,
            );
        }
        Err(SignInError::TooManyAttempts { retry_after_secs }) => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            let text = t!("sign_in.throttled", locale = lang.code(), minutes = minutes).into_owned();
            return sign_in_page(&holder, lang, &pending, StatusCode::TOO_MANY_REQUESTS, Some(text), &form.username);
        }
        Err(SignInError::Unavailable(error)) => {
            tracing::error!(%error, "sign-in failed");
            return sign_in_page(
                &holder,
                lang,
                &pending,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(message("sign_in.unavailable")),
                &form.username,
            );
        }
    };
    if !is_member_with_records(&account) {
        return sign_in_page(
            &holder,
            lang,
            &pending,
            StatusCode::FORBIDDEN,
            Some(message("sign_in.not_member")),
            &form.username,
        );
    }
    let signed_in = async {
        session.cycle_id().await?;
        session.insert(SESSION_ACCOUNT_KEY, account.id.0).await
    };
    if let Err(error) = signed_in.await {
        return server_error(&holder, lang, error);
    }
    tracing::info!(account = account.id.0, client_id = %pending.client_id, "member signed in to authorize an app");
    Redirect::to(&format!("/oauth/authorize/consent?request={}&client={}", pending.id, encode(&pending.client_id)))
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct RequestId {
    request: String,
    #[serde(default)]
    client: Option<String>,
}

/// `GET /oauth/authorize/consent?request=…`: the consent screen (or sign-in, if needed).
pub async fn consent(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    Query(RequestId { request, client }): Query<RequestId>,
) -> Response {
    let Some(pending) = pending(&session, &request).await else {
        return expired(&holder, lang, client.as_deref()).await;
    };
    match signed_in_member(&holder, &session).await {
        Ok(Some(account)) => consent_page(&holder, lang, &pending, &account, None),
        Ok(None) => sign_in_page(&holder, lang, &pending, StatusCode::OK, None, ""),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    request: String,
    #[serde(default)]
    client: Option<String>,
    decision: String,
    sensitive: Option<String>,
}

/// `POST /oauth/authorize/decision`: Allow (with the sensitive-data choice) or Do not allow.
pub async fn decide(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    Form(form): Form<DecisionForm>,
) -> Response {
    let Some(pending) = pending(&session, &form.request).await else {
        return expired(&holder, lang, form.client.as_deref()).await;
    };
    let account = match signed_in_member(&holder, &session).await {
        Ok(Some(account)) => account,
        Ok(None) => return sign_in_page(&holder, lang, &pending, StatusCode::OK, None, ""),
        Err(response) => return response,
    };
    if form.decision != "approve" {
        forget_pending(&session, &pending.id).await;
        tracing::info!(account = account.id.0, client_id = %pending.client_id, "member denied the app");
        return redirect_error(
            &pending.redirect_uri,
            "access_denied",
            "the member did not allow access",
            Some(&pending.state),
        );
    }
    let include_sensitive = match form.sensitive.as_deref() {
        Some("include") => true,
        Some("exclude") => false,
        _ => {
            let text = t!("consent.sensitive_required", locale = lang.code()).into_owned();
            let mut response = consent_page(&holder, lang, &pending, &account, Some(text));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let Some(patient_id) = account.patient_id.clone() else {
        return expired(&holder, lang, Some(&pending.client_id)).await;
    };
    let now = Timestamp::now();
    let grant = OAuthGrant {
        id: random_token(),
        client_id: pending.client_id.clone(),
        account_id: AccountId(account.id.0),
        patient_id,
        scope: pending.scope.clone(),
        include_sensitive,
        created_at: now.millis(),
        revoked_at: None,
    };
    let code = random_token();
    let stored = async {
        holder.store.insert_oauth_grant(&grant).await?;
        holder
            .store
            .insert_oauth_code(&NewCode {
                code_hash: token_hash(&code),
                grant_id: grant.id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                code_challenge: pending.code_challenge.clone(),
                nonce: pending.nonce.clone(),
                expires_at: now.plus(time::Duration::seconds(CODE_TTL_SECONDS)),
            })
            .await
    };
    if let Err(error) = stored.await {
        return server_error(&holder, lang, error);
    }
    forget_pending(&session, &pending.id).await;
    tracing::info!(account = account.id.0, client_id = %pending.client_id, include_sensitive, "member allowed the app");
    redirect_with(&pending.redirect_uri, &[("code", &code), ("state", &pending.state)])
}

/// `GET /oauth/authorize/cancel?request=…`: the member backs out at sign-in.
pub async fn cancel(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    Query(RequestId { request, client }): Query<RequestId>,
) -> Response {
    let Some(pending) = pending(&session, &request).await else {
        return expired(&holder, lang, client.as_deref()).await;
    };
    forget_pending(&session, &pending.id).await;
    redirect_error(&pending.redirect_uri, "access_denied", "the member cancelled", Some(&pending.state))
}

/// The requests in progress still fresh (a session from before several were kept has none).
async fn pendings(session: &Session) -> Vec<Pending> {
    let now = Timestamp::now().millis();
    let kept: Vec<Pending> = session.get(PENDING).await.ok().flatten().unwrap_or_default();
    kept.into_iter().filter(|p| now - p.created_at < PENDING_TTL_MS).collect()
}

async fn pending(session: &Session, id: &str) -> Option<Pending> {
    pendings(session).await.into_iter().find(|p| p.id == id)
}

/// Keeps `pending` beside the others in progress: a second tab, or Back and Forward during the
/// round trip, leaves each request it started usable.
async fn keep_pending(session: &Session, pending: &Pending) -> Result<(), tower_sessions::session::Error> {
    let mut kept = pendings(session).await;
    kept.push(pending.clone());
    let excess = kept.len().saturating_sub(PENDING_KEPT);
    kept.drain(..excess);
    session.insert(PENDING, &kept).await
}

/// A request answered (or cancelled) is not answered twice.
async fn forget_pending(session: &Session, id: &str) {
    let kept: Vec<Pending> = pendings(session).await.into_iter().filter(|p| p.id != id).collect();
    if let Err(error) = session.insert(PENDING, &kept).await {
        tracing::warn!(%error, "cannot update the requests in progress");
    }
}

fn is_member_with_records(account: &Account) -> bool {
    account.roles.has(baton_accounts::Role::Member) && account.patient_id.is_some()
}

async fn signed_in_member(holder: &Holder, session: &Session) -> Result<Option<Account>, Response> {
    let id = match session.get::<i64>(SESSION_ACCOUNT_KEY).await {
        Ok(id) => id,
        Err(error) => return Err(server_error(holder, Lang::En, error)),
    };
    let Some(id) = id else { return Ok(None) };
    match holder.accounts.by_id(AccountId(id)).await {
        Ok(account) => Ok(account.filter(is_member_with_records)),
        Err(error) => Err(server_error(holder, Lang::En, error)),
    }
}

fn sign_in_page(
    holder: &Holder,
    lang: Lang,
    pending: &Pending,
    status: StatusCode,
    error: Option<String>,
    username: &str,
) -> Response {
    let l = lang.code();
    let (plan, app) = (holder.plan_name.as_str(), pending.client_name.as_str());
    let page = SignInPage {
        chrome: Chrome::new(
            lang,
            t!("sign_in.title", locale = l, plan = plan).into_owned(),
            plan,
            &format!("/oauth/authorize/consent?request={}&client={}", pending.id, encode(&pending.client_id)),
        ),
        intro: t!("sign_in.intro", locale = l, app = app, plan = plan).into_owned(),
        error,
        request: pending.id.clone(),
        client: pending.client_id.clone(),
        username: username.to_owned(),
        username_label: t!("sign_in.username", locale = l).into_owned(),
        password_label: t!("sign_in.password", locale = l).into_owned(),
        submit: t!("sign_in.submit", locale = l).into_owned(),
        cancel: t!("sign_in.cancel", locale = l, app = app).into_owned(),
        cancel_href: format!("/oauth/authorize/cancel?request={}&client={}", pending.id, encode(&pending.client_id)),
    };
    render(status, &page, None)
}

fn consent_page(holder: &Holder, lang: Lang, pending: &Pending, account: &Account, error: Option<String>) -> Response {
    let l = lang.code();
    let (plan, app) = (holder.plan_name.as_str(), pending.client_name.as_str());
    let scopes = Scopes::parse(&pending.scope);
    let mut what = shared_kinds(&scopes, l);
    if scopes.contains(&Scope::OfflineAccess) {
        let ends = super::token::access_ends(holder, Timestamp::now()).to_datetime().date();
        let date = crate::pages::day_in_words(ends, l);
        what.push(t!("consent.offline", locale = l, app = app, date = date, plan = &holder.plan_name).into_owned());
    }
    let origin = Url::parse(&pending.redirect_uri).ok().map(|u| u.origin().ascii_serialization());
    let host = Url::parse(&pending.redirect_uri).ok().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(port) => format!("{h}:{port}"),
            None => h.to_owned(),
        })
    });
    let page = ConsentPage {
        chrome: Chrome::new(
            lang,
            t!("consent.title", locale = l, app = app).into_owned(),
            plan,
            &format!("/oauth/authorize/consent?request={}&client={}", pending.id, encode(&pending.client_id)),
        ),
        who: t!("consent.who", locale = l, app = app, plan = plan, name = account.display_name.as_str()).into_owned(),
        what_title: t!("consent.what_title", locale = l, app = app).into_owned(),
        what,
        error,
        request: pending.id.clone(),
        client: pending.client_id.clone(),
        sensitive_legend: t!("consent.sensitive_legend", locale = l).into_owned(),
        sensitive_intro: t!("consent.sensitive_intro", locale = l).into_owned(),
        sensitive_include: t!("consent.sensitive_include", locale = l).into_owned(),
        sensitive_exclude: t!("consent.sensitive_exclude", locale = l).into_owned(),
        returns_to: t!("consent.returns_to", locale = l, app = app, host = host.unwrap_or_default()).into_owned(),
        approve: t!("consent.approve", locale = l).into_owned(),
        deny: t!("consent.deny", locale = l).into_owned(),
    };
    render(StatusCode::OK, &page, origin.as_deref())
}

/// What `scopes` let an app read, in the member's words.
pub(crate) fn shared_kinds(scopes: &Scopes, l: &str) -> Vec<String> {
    let mut what = vec![t!("consent.identity", locale = l).into_owned()];
    let all = ["Coverage", "ExplanationOfBenefit", "Condition", "Observation", "MedicationRequest"]
        .iter()
        .all(|t| scopes.can_read(t));
    if all {
        what.push(t!("consent.coverage", locale = l).into_owned());
        what.push(t!("consent.prior_authorizations", locale = l).into_owned());
        what.push(t!("consent.clinical", locale = l).into_owned());
    } else {
        let types = scopes.readable_types(baton_fhir::exchange::EXCHANGE_TYPES).join(", ");
        if !types.is_empty() {
            what.push(t!("consent.some_records", locale = l, types = types).into_owned());
        }
    }
    what
}

fn error_page(holder: &Holder, lang: Lang, status: StatusCode, message: impl Into<String>) -> Response {
    error_page_back(holder, lang, status, message, None)
}

fn error_page_back(
    holder: &Holder,
    lang: Lang,
    status: StatusCode,
    message: impl Into<String>,
    back: Option<(String, String)>,
) -> Response {
    let page = ErrorPage {
        chrome: Chrome::new(lang, t!("error.title", locale = lang.code()).into_owned(), &holder.plan_name, "/"),
        message: message.into(),
        back,
    };
    render(status, &page, None)
}

/// A request no longer in progress (answered, timed out, or from a session that ended): the
/// page says so and links back to the app the member came from, where they start again.
async fn expired(holder: &Holder, lang: Lang, client_id: Option<&str>) -> Response {
    let client = match client_id {
        Some(id) => holder.store.oauth_client(id).await.ok().flatten(),
        None => None,
    };
    let back = client.and_then(|client| {
        let origin = client.redirect_uris().find_map(|u| Url::parse(u).ok()).map(|u| u.origin().ascii_serialization())?;
        let label = t!("error.back_to", locale = lang.code(), app = client.name.as_str()).into_owned();
        Some((format!("{origin}/"), label))
    });
    let message = if back.is_some() { "error.expired_back" } else { "error.expired" };
    error_page_back(holder, lang, StatusCode::BAD_REQUEST, t!(message, locale = lang.code()), back)
}

fn server_error(holder: &Holder, lang: Lang, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "authorization page failed");
    error_page(holder, lang, StatusCode::INTERNAL_SERVER_ERROR, t!("error.server", locale = lang.code()))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Back to the client with an RFC 6749 §4.1.2.1 error.
fn redirect_error(redirect_uri: &str, error: &str, description: &str, state: Option<&str>) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_with(redirect_uri, &params)
}

/// A 303 to `redirect_uri` with `params` added to its query.
fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
