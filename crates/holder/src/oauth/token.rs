//! `/oauth/token` (authorization_code, refresh_token, and client_credentials for other plans'
//! systems), `/oauth/introspect` (RFC 7662) and
//! `/oauth/revoke` (RFC 7009).
//!
//! Codes are single use: a second use revokes everything issued from the first. Refresh
//! tokens rotate: each exchange spends the old one and issues a new one, and presenting a
//! spent one revokes the whole family (the grant).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_fhir::smart::{Scope, Scopes};
use baton_store::{CodeRedemption, OAuthClient, OAuthGrant, Timestamp, TokenKind};
use baton_vocab::SensitiveSharing;
use serde::Serialize;
use serde_json::{Value, json};

use super::authorize::RemoteIp;
use super::client_credentials::client_credentials;
use super::errors::OAuthError;
use super::{pkce_matches, random_token, token_hash};
use crate::Holder;
use crate::clients::authenticate;

/// `POST /oauth/token`
pub async fn token(State(holder): State<Holder>, RemoteIp(ip): RemoteIp, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let params = form(&headers, &body)?;
        let (client, method) = authenticate(&holder, &headers, &params, ip).await?;
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => authorization_code(&holder, &client, &params).await,
            Some("refresh_token") => refresh(&holder, &client, &params).await,
            Some("client_credentials") => client_credentials(&holder, &client, method, &params).await,
            Some(other) => Err(OAuthError::unsupported_grant_type(format!("grant_type {other} is not supported"))),
            None => Err(OAuthError::invalid_request("grant_type is required")),
        }
    }
    .await;
    match result {
        Ok(body) => no_store(Json(body).into_response()),
        Err(error) => error.into_response(),
    }
}

/// The request's form parameters (RFC 6749: form-encoded, each at most once).
fn form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| OAuthError::invalid_request("the body is not a valid form"))?;
    let mut params = HashMap::new();
    for (key, value) in pairs {
        if params.insert(key.clone(), value).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {key} is repeated")));
        }
    }
    Ok(params)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

async fn authorization_code(
    holder: &Holder,
    client: &OAuthClient,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let code = required(params, "code")?;
    let redirect_uri = required(params, "redirect_uri")?;
    let verifier = required(params, "code_verifier")?;
    let now = Timestamp::now();
    let (code, grant) = match holder
        .store
        .redeem_oauth_code(&token_hash(code), now)
        .await
        .map_err(OAuthError::server)?
    {
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the authorization code is not valid")),
        CodeRedemption::AlreadyUsed(grant) => {
            holder.store.revoke_oauth_grant(&grant.id, now).await.map_err(OAuthError::server)?;
            tracing::warn!(client_id = %client.client_id, grant = %grant.id, "authorization code reused: grant revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; tokens issued with it are revoked",
            ));
        }
        CodeRedemption::Redeemed(code, grant) => (code, grant),
    };
    if grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
    }
    if grant.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("this authorization was revoked"));
    }
    if now.millis() > code.expires_at {
        return Err(OAuthError::invalid_grant("the authorization code has expired"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    if !pkce_matches(verifier, &code.code_challenge) {
        return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let mut response = issue(holder, &grant, &grant.scope, now).await?;
    let scopes = Scopes::parse(&grant.scope);
    if scopes.contains(&Scope::OpenId) {
        response["id_token"] = Value::String(id_token(holder, &grant, code.nonce, now)?);
    }
    Ok(response)
}

async fn refresh(holder: &Holder, client: &OAuthClient, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let presented = required(params, "refresh_token")?;
    let hash = token_hash(presented);
    let now = Timestamp::now();
    let Some((token, grant)) = holder.store.oauth_token(&hash).await.map_err(OAuthError::server)? else {
        return Err(OAuthError::invalid_grant("the refresh token is not valid"));
    };
    if token.kind != TokenKind::Refresh || grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the refresh token is not valid"));
    }
    if grant.revoked_at.is_some() || token.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    if now.millis() > token.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    if !holder.store.spend_refresh_token(&hash, now).await.map_err(OAuthError::server)? {
        holder.store.revoke_oauth_grant(&grant.id, now).await.map_err(OAuthError::server)?;
        tracing::warn!(client_id = %client.client_id, grant = %grant.id, "refresh token reused: grant revoked");
        return Err(OAuthError::invalid_grant(
            "the refresh token was already used; every token of this grant is revoked",
        ));
    }
    let scope = match params.get("scope") {
        Some(requested) => {
            let requested = Scopes::parse(requested);
            let granted = Scopes::parse(&grant.scope);
            if requested.iter().any(|s| !granted.contains(s)) {
                return Err(OAuthError::invalid_scope("a refresh can only narrow the granted scope"));
            }
            requested.to_string()
        }
        None => grant.scope.clone(),
    };
    issue(holder, &grant, &scope, now).await
}

/// When an app's access approved at `approved` ends (`refresh_token_days` later).
pub fn access_ends(holder: &Holder, approved: Timestamp) -> Timestamp {
    approved.plus(time::Duration::days(i64::from(holder.settings.refresh_token_days)))
}

/// A new access token (and refresh token, with `offline_access`) for `grant`.
async fn issue(holder: &Holder, grant: &OAuthGrant, scope: &str, now: Timestamp) -> Result<Value, OAuthError> {
    let access = random_token();
    let ttl = i64::from(holder.settings.access_token_minutes) * 60;
    let store = &holder.store;
    store
        .insert_oauth_token(
            &token_hash(&access),
            &grant.id,
            TokenKind::Access,
            scope,
            now,
            now.plus(time::Duration::seconds(ttl)),
        )
        .await
        .map_err(OAuthError::server)?;
    let mut response = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
        "patient": grant.patient_id,
        "sensitive_data": sensitive_data(grant),
    });
    // The app's access lasts `refresh_token_days` from the member's approval, as the consent
    // screen said: a rotated refresh token ends when the first one did.
    let ends = access_ends(holder, Timestamp::from_millis(grant.created_at));
    if Scopes::parse(&grant.scope).contains(&Scope::OfflineAccess) && ends.millis() > now.millis() {
        let refresh = random_token();
        store
            .insert_oauth_token(&token_hash(&refresh), &grant.id, TokenKind::Refresh, scope, now, ends)
            .await
            .map_err(OAuthError::server)?;
        response["refresh_token"] = Value::String(refresh);
    }
    Ok(response)
}

/// Whether the member let this app have their sensitive information: said in every token
/// response and introspection (a Baton extension), so that the app can tell the member what
/// this plan held back — an app cannot see what it was not given.
fn sensitive_data(grant: &OAuthGrant) -> SensitiveSharing {
    if grant.include_sensitive { SensitiveSharing::Included } else { SensitiveSharing::Excluded }
}

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(rename = "fhirUser")]
    fhir_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

fn id_token(holder: &Holder, grant: &OAuthGrant, nonce: Option<String>, now: Timestamp) -> Result<String, OAuthError> {
    let iat = now.millis() / 1000;
    let claims = IdTokenClaims {
        iss: &holder.urls.fhir_base,
        sub: grant.account_id.0.to_string(),
        aud: &grant.client_id,
        iat,
        exp: iat + 3600,
        fhir_user: format!("{}/Patient/{}", holder.urls.fhir_base, grant.patient_id),
        nonce,
    };
    holder.key.sign(&claims).map_err(OAuthError::server)
}

/// `POST /oauth/introspect` (RFC 7662): a client may ask about its own tokens.
pub async fn introspect(
    State(holder): State<Holder>,
    RemoteIp(ip): RemoteIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form(&headers, &body)?;
        let (client, _) = authenticate(&holder, &headers, &params, ip).await?;
        let token = required(&params, "token")?;
        let now = Timestamp::now();
        let found = holder.store.oauth_token(&token_hash(token)).await.map_err(OAuthError::server)?;
        let body = match found {
            Some((token, grant))
                if grant.client_id == client.client_id
                    && token.revoked_at.is_none()
                    && grant.revoked_at.is_none()
                    && token.expires_at > now.millis()
                    && !(token.kind == TokenKind::Refresh && token.used_at.is_some()) =>
            {
                json!({
                    "active": true,
                    "scope": token.scope,
                    "client_id": grant.client_id,
                    "token_type": if token.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
                    "exp": token.expires_at / 1000,
                    "iat": token.issued_at / 1000,
                    "sub": grant.account_id.0.to_string(),
                    "patient": grant.patient_id,
                    "sensitive_data": sensitive_data(&grant),
                    "iss": holder.urls.fhir_base,
                })
            }
            _ => json!({"active": false}),
        };
        Ok::<_, OAuthError>(body)
    }
    .await;
    match result {
        Ok(body) => no_store(Json(body).into_response()),
        Err(error) => error.into_response(),
    }
}

/// `POST /oauth/revoke` (RFC 7009): revoking a refresh token revokes its whole grant.
pub async fn revoke(State(holder): State<Holder>, RemoteIp(ip): RemoteIp, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let params = form(&headers, &body)?;
        let (client, _) = authenticate(&holder, &headers, &params, ip).await?;
        let token = required(&params, "token")?;
        let hash = token_hash(token);
        let now = Timestamp::now();
        if let Some((token, grant)) = holder.store.oauth_token(&hash).await.map_err(OAuthError::server)?
            && grant.client_id == client.client_id
        {
            match token.kind {
                TokenKind::Refresh => holder.store.revoke_oauth_grant(&grant.id, now).await,
                TokenKind::Access => holder.store.revoke_oauth_token(&hash, now).await,
            }
            .map_err(OAuthError::server)?;
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        // An unknown or foreign token is not an error (RFC 7009 §2.2).
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => error.into_response(),
    }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
