//! Registered client apps and how they prove who they are at the token endpoint:
//! `client_secret_basic` (a shared secret, stored hashed) or `private_key_jwt` (a JWT
//! signed RS384 or ES384 with a key from the client's JWK Set).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use baton_store::{ClientOrigin, ClientState, OAuthClient, Store, StoreError, Timestamp};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::oauth::errors::OAuthError;
use crate::oauth::limits::Attempt;
use crate::{ClientSettings, Holder};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far in the future a client assertion may expire (SMART: at most five minutes).
const MAX_ASSERTION_LIFETIME: i64 = 300;
const JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// How soon an unknown `kid` may fetch a cached JWK Set again.
const JWKS_REFETCH_AFTER: Duration = Duration::from_secs(1);

/// Fetched JWK Sets by URL.
pub type JwksCache = tokio::sync::Mutex<HashMap<String, (Instant, JwkSet)>>;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("client {client_id:?}: {problem}")]
    Invalid { client_id: String, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates a client from the configuration and stores it (its secret hashed with argon2id).
pub async fn register(store: &Store, settings: &ClientSettings) -> Result<(), ClientError> {
    let client = validate(settings, ClientOrigin::Configuration).await?;
    store.put_oauth_client(&client).await?;
    Ok(())
}

/// The registration `settings` describe, checked (its secret hashed with argon2id), active.
pub async fn validate(settings: &ClientSettings, origin: ClientOrigin) -> Result<OAuthClient, ClientError> {
    let invalid = |problem: String| ClientError::Invalid { client_id: settings.client_id.clone(), problem };
    if settings.client_id.trim().is_empty() || settings.client_id.chars().any(char::is_whitespace) {
        return Err(invalid("client_id must be non-empty, without spaces".into()));
    }
    // Without redirect URIs a client is another plan's system: it can only use
    // client_credentials, which takes a signed assertion.
    if settings.redirect_uris.is_empty() && settings.jwks.is_none() && settings.jwks_url.is_none() {
        return Err(invalid("needs a redirect URI (a members' app) or a JWK Set (another plan's system)".into()));
    }
    for uri in &settings.redirect_uris {
        let parsed = Url::parse(uri).map_err(|e| invalid(format!("redirect URI {uri:?}: {e}")))?;
        if parsed.fragment().is_some() || !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!("redirect URI {uri:?} must be http(s) without a fragment")));
        }
    }
    if settings.secret.is_none() && settings.jwks.is_none() && settings.jwks_url.is_none() {
        return Err(invalid("needs a secret, a JWK Set or a JWK Set URL".into()));
    }
    for identifier in &settings.identifiers {
        let well_formed = identifier
            .split_once('|')
            .is_some_and(|(system, value)| !system.trim().is_empty() && !value.trim().is_empty());
        if !well_formed || identifier.chars().any(char::is_control) {
            return Err(invalid(format!("identifier {identifier:?} must be system|value")));
        }
    }
    if let Some(jwks) = &settings.jwks {
        serde_json::from_str::<JwkSet>(jwks).map_err(|e| invalid(format!("jwks is not a JWK Set: {e}")))?;
    }
    let secret_hash = match &settings.secret {
        Some(secret) if secret.expose_secret().len() < 16 => {
            return Err(invalid("secret must have at least 16 characters".into()));
        }
        Some(secret) => {
            let secret = secret.clone();
            let hash = tokio::task::spawn_blocking(move || baton_accounts::password::hash(secret.expose_secret()))
                .await
                .map_err(|e| invalid(e.to_string()))?
                .map_err(|e| invalid(e.to_string()))?;
            Some(hash)
        }
        None => None,
    };
    Ok(OAuthClient {
        client_id: settings.client_id.clone(),
        name: settings.name.clone(),
        redirect_uris: settings.redirect_uris.join("\n"),
        secret_hash,
        jwks: settings.jwks.clone(),
        jwks_url: settings.jwks_url.as_ref().map(Url::to_string),
        scopes: settings.scopes.clone(),
        state: ClientState::Active,
        origin,
        state_changed_by: None,
        identifiers: settings.identifiers.join("\n"),
    })
}

/// How a client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basic,
    PrivateKeyJwt,
}

/// Authenticates the client of a token, introspection or revocation request from `ip`; a
/// client or address with too many failures lately is held back first (see `oauth::limits`).
pub async fn authenticate(
    holder: &Holder,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    ip: Option<std::net::IpAddr>,
) -> Result<(OAuthClient, Method), OAuthError> {
    let attempt = Attempt::new(claimed_client(headers, params).as_deref(), ip);
    if let Some(wait) = holder.client_failures.wait(&attempt) {
        tracing::warn!(?ip, "client authentication held back");
        return Err(OAuthError::held_back(wait));
    }
    let result = authenticate_client(holder, headers, params).await;
    if result.as_ref().is_err_and(|e| e.error == "invalid_client") {
        holder.client_failures.record(&attempt);
    }
    result
}

/// The client an authentication claims to be, before anything is checked: Basic's user, the
/// assertion's `iss`, or `client_id`.
fn claimed_client(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    let basic = basic_credentials(headers).and_then(Result::ok).map(|(id, _)| id);
    let asserted = params
        .get("client_assertion")
        .and_then(|assertion| jsonwebtoken::dangerous::insecure_decode_claims::<AssertionClaims>(assertion).ok())
        .map(|claims| claims.iss);
    basic.or(asserted).or_else(|| params.get("client_id").cloned())
}

async fn authenticate_client(
    holder: &Holder,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(OAuthClient, Method), OAuthError> {
    if let Some(credentials) = basic_credentials(headers) {
        return basic(holder, credentials, params).await.map(|c| (c, Method::Basic));
    }
    if let Some(assertion) = params.get("client_assertion") {
        if params.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client("client_assertion_type must be jwt-bearer"));
        }
        return private_key_jwt(holder, assertion, params).await.map(|c| (c, Method::PrivateKeyJwt));
    }
    Err(OAuthError::invalid_client("client authentication is required (Basic or private_key_jwt)"))
}

/// The client id and secret of an HTTP Basic `Authorization` header, each form-urlencoded
/// (RFC 6749 §2.3.1): `None` without one, an error for one that cannot be read.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let encoded = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    let read = || {
        let text = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = text.split_once(':')?;
        Some((decode(id), decode(secret)))
    };
    Some(read().ok_or(()))
}

async fn basic(
    holder: &Holder,
    credentials: Result<(String, String), ()>,
    params: &HashMap<String, String>,
) -> Result<OAuthClient, OAuthError> {
    let refused = || OAuthError::invalid_client("client authentication failed").basic();
    let (id, secret) = credentials.map_err(|()| refused())?;
    if params.get("client_id").is_some_and(|given| *given != id) {
        return Err(OAuthError::invalid_client("client_id does not match the authenticated client").basic());
    }
    let client = holder.store.oauth_client(&id).await.map_err(OAuthError::server)?;
    let stored = client.as_ref().and_then(|c| c.secret_hash.clone());
    let verified = baton_accounts::password::verify_async(secret, stored).await.unwrap_or(false);
    match client {
        Some(client) if verified => active(client),
        _ => {
            tracing::warn!(client_id = %id, "client secret refused");
            Err(refused())
        }
    }
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    exp: i64,
    #[serde(default)]
    jti: Option<String>,
}

async fn private_key_jwt(
    holder: &Holder,
    assertion: &str,
    params: &HashMap<String, String>,
) -> Result<OAuthClient, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| OAuthError::invalid_client("client_assertion is not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(OAuthError::invalid_client("client_assertion must be signed with RS384 or ES384"));
    }
    let unverified: AssertionClaims = // Only to learn which client claims to be speaking; the signature is checked below.
        jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| OAuthError::invalid_client("client_assertion claims are unreadable"))?;
    let client_id = unverified.iss;
    if params.get("client_id").is_some_and(|given| *given != client_id) {
        return Err(OAuthError::invalid_client("client_id does not match the assertion"));
    }
    let client = holder
        .store
        .oauth_client(&client_id)
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let client = active(client)?;
    let jwks = client_jwks(holder, &client, header.kid.as_deref()).await?;
    let candidates: Vec<_> =
        jwks.keys.iter().filter(|k| header.kid.is_none() || k.common.key_id == header.kid).collect();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&holder.urls.token]);
    validation.set_issuer(&[&client_id]);
    validation.sub = Some(client_id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 5;
    let claims = candidates
        .iter()
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
        .find_map(|key| jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation).ok())
        .map(|data| data.claims)
        .ok_or_else(|| {
            OAuthError::invalid_client("client_assertion signature, audience, issuer or expiry is not valid")
        })?;
    let now = Timestamp::now();
    if claims.exp > now.millis() / 1000 + MAX_ASSERTION_LIFETIME + 5 {
        return Err(OAuthError::invalid_client("client_assertion must expire within five minutes"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| OAuthError::invalid_client("client_assertion needs a jti"))?;
    let fresh = holder
        .store
        .remember_assertion_jti(&client_id, &jti, Timestamp::from_millis(claims.exp * 1000), now)
        .await
        .map_err(OAuthError::server)?;
    if !fresh {
        tracing::warn!(client_id, "client assertion replayed");
        return Err(OAuthError::invalid_client("client_assertion was already used (jti replay)"));
    }
    Ok(client)
}

/// A client an admin suspended or removed gets no token.
fn active(client: OAuthClient) -> Result<OAuthClient, OAuthError> {
    match client.state {
        ClientState::Active => Ok(client),
        ClientState::Suspended => Err(OAuthError::invalid_client("this client is suspended")),
        ClientState::Removed => Err(OAuthError::invalid_client("this client was removed")),
    }
}

/// The client's keys: inline, or fetched from its `jwks_url` and cached — fetched again before
/// the cache expires when an assertion names a key the cached set lacks (the client rotated
/// its keys), though not more often than every [`JWKS_REFETCH_AFTER`].
async fn client_jwks(holder: &Holder, client: &OAuthClient, kid: Option<&str>) -> Result<JwkSet, OAuthError> {
    if let Some(inline) = &client.jwks {
        return serde_json::from_str(inline)
            .map_err(|_| OAuthError::invalid_client("the registered JWK Set is unreadable"));
    }
    let Some(url) = &client.jwks_url else {
        return Err(OAuthError::invalid_client("this client has no keys registered"));
    };
    {
        let cache = holder.jwks_cache.lock().await;
        if let Some((at, set)) = cache.get(url)
            && at.elapsed() < JWKS_CACHE_TTL
        {
            let knows_kid = kid.is_none_or(|kid| set.find(kid).is_some());
            if knows_kid || at.elapsed() < JWKS_REFETCH_AFTER {
                return Ok(set.clone());
            }
        }
    }
    let set: JwkSet = async { holder.http.get(url).send().await?.error_for_status()?.json().await }.await.map_err(
        |e: reqwest::Error| {
            tracing::warn!(client_id = %client.client_id, error = %e, "cannot fetch the client's JWK Set");
            OAuthError::invalid_client("the client's JWK Set cannot be fetched")
        },
    )?;
    holder.jwks_cache.lock().await.insert(url.clone(), (Instant::now(), set.clone()));
    Ok(set)
}
