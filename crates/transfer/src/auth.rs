//! Keeping a link's access token fresh: a refresh-token exchange (oauth2 crate) with this
//! plan's client credentials for that previous plan — a shared secret, or a signed client
//! assertion (`private_key_jwt`, RS384 or ES384). A rotated refresh token is stored sealed, in
//! the same statement as the new access token, before the new token is used.

use baton_store::{PayerLink, Store, Timestamp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RefreshToken, RequestTokenError, TokenResponse, TokenUrl};
use serde_json::json;
use thiserror::Error;

use crate::sealed::TokenCipher;

/// How this plan authenticates to a previous plan's token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_basic`.
    Secret(String),
    /// `private_key_jwt`: a PEM private key (RSA for RS384, P-384 for ES384).
    PrivateKey { pem: String, algorithm: Algorithm, kid: Option<String> },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret(_) => f.write_str("Secret(***)"),
            ClientAuth::PrivateKey { algorithm, kid, .. } => write!(f, "PrivateKey({algorithm:?}, kid {kid:?})"),
        }
    }
}

/// This plan's registration at a previous plan.
#[derive(Debug, Clone)]
pub struct PayerCredentials {
    pub client_id: String,
    pub auth: ClientAuth,
    /// A pinned token endpoint; otherwise it is read from the SMART configuration.
    pub token_url: Option<String>,
    /// The previous plan's name (for the Provenance this plan writes).
    pub name: String,
    /// This plan's system's registration there for the Payer-to-Payer API, when it has one.
    pub backend: Option<crate::backend::BackendCredentials>,
}

/// Where the engine finds the credentials for each previous plan (the payer directory).
pub trait PayerDirectory: Send + Sync {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials>;

    /// The previous plan's FHIR base, where requests for batches of members go.
    fn fhir_base(&self, _payer_id: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Error)]
pub enum RefreshError {
    /// The previous plan refused the refresh token: the member must authorize again.
    #[error("the previous plan no longer accepts this authorization: {0}")]
    Reauthorize(String),
    #[error("refreshing the access token failed: {0}")]
    Failed(String),
}

/// Exchanges the link's refresh token for a new access token (storing both, sealed); returns
/// the new access token.
pub async fn refresh(
    store: &Store,
    cipher: &TokenCipher,
    http: &reqwest::Client,
    link: &PayerLink,
    credentials: &PayerCredentials,
    token_url: &str,
) -> Result<String, RefreshError> {
    let Some(sealed) = &link.refresh_token else {
        return Err(RefreshError::Reauthorize("there is no refresh token".into()));
    };
    let refresh_token = cipher
        .open_for(sealed, &PayerLink::token_place(&link.id, "refresh"))
        .map_err(|e| RefreshError::Failed(e.to_string()))?;
    let url = TokenUrl::new(token_url.to_owned()).map_err(|e| RefreshError::Failed(e.to_string()))?;
    let client = BasicClient::new(ClientId::new(credentials.client_id.clone())).set_token_uri(url);
    let token = RefreshToken::new(refresh_token);
    let response = match &credentials.auth {
        ClientAuth::Secret(secret) => {
            client
                .set_client_secret(ClientSecret::new(secret.clone()))
                .exchange_refresh_token(&token)
                .request_async(http)
                .await
        }
        ClientAuth::PrivateKey { pem, algorithm, kid } => {
            let assertion = client_assertion(&credentials.client_id, token_url, pem, *algorithm, kid.clone())?;
            client
                .set_auth_type(AuthType::RequestBody)
                .exchange_refresh_token(&token)
                .add_extra_param("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                .add_extra_param("client_assertion", assertion)
                .request_async(http)
                .await
        }
    };
    let response = response.map_err(|error| match error {
        RequestTokenError::ServerResponse(e) if *e.error() == BasicErrorResponseType::InvalidGrant => {
            RefreshError::Reauthorize(e.error_description().cloned().unwrap_or_else(|| "invalid_grant".into()))
        }
        RequestTokenError::ServerResponse(e) if *e.error() == BasicErrorResponseType::InvalidClient => {
            RefreshError::Failed(format!(
                "the previous plan does not accept this plan's client credentials ({})",
                e.error()
            ))
        }
        other => RefreshError::Failed(other.to_string()),
    })?;
    let now = Timestamp::now();
    let access = response.access_token().secret().clone();
    let seal = |token: &str, part: &str| {
        cipher.seal_for(token, &PayerLink::token_place(&link.id, part)).map_err(|e| RefreshError::Failed(e.to_string()))
    };
    let sealed_access = seal(&access, "access")?;
    let sealed_refresh = match response.refresh_token() {
        Some(rotated) => Some(seal(rotated.secret(), "refresh")?),
        None => None,
    };
    let expires_at = response.expires_in().map(|d| now.millis() + d.as_millis() as i64);
    store
        .update_link_tokens(&link.id, &sealed_access, expires_at, sealed_refresh.as_deref(), now)
        .await
        .map_err(|e| RefreshError::Failed(e.to_string()))?;
    tracing::info!(link = %link.id, rotated = sealed_refresh.is_some(), "access token refreshed");
    Ok(access)
}

/// Tells the previous plan to end the link's access (RFC 7009): its refresh token is revoked
/// at `revocation_url`, authenticated as at the token endpoint. Ok when the plan answered 200
/// (which RFC 7009 says it does for a token it had already forgotten, too).
pub async fn revoke(
    cipher: &TokenCipher,
    http: &reqwest::Client,
    link: &PayerLink,
    credentials: &PayerCredentials,
    revocation_url: &str,
) -> Result<(), RefreshError> {
    let (sealed, hint, part) = match (&link.refresh_token, &link.access_token) {
        (Some(sealed), _) => (sealed, "refresh_token", "refresh"),
        (None, Some(sealed)) => (sealed, "access_token", "access"),
        (None, None) => return Err(RefreshError::Failed("there is no token to revoke".into())),
    };
    let token = cipher
        .open_for(sealed, &PayerLink::token_place(&link.id, part))
        .map_err(|e| RefreshError::Failed(e.to_string()))?;
    let mut form = vec![("token", token), ("token_type_hint", hint.to_owned())];
    let request = http.post(revocation_url).timeout(std::time::Duration::from_secs(5));
    let request = match &credentials.auth {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        ClientAuth::Secret(secret) => {
            let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request.basic_auth(encode(&credentials.client_id), Some(encode(secret)))
        }
        ClientAuth::PrivateKey { pem, algorithm, kid } => {
            let assertion = client_assertion(&credentials.client_id, revocation_url, pem, *algorithm, kid.clone())?;
            form.push(("client_id", credentials.client_id.clone()));
            form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
            form.push(("client_assertion", assertion));
            request
        }
    };
    let response = request.form(&form).send().await.map_err(|e| RefreshError::Failed(e.without_url().to_string()))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => {
            let body = response.text().await.unwrap_or_default();
            let said: String = body.chars().take(200).collect();
            Err(RefreshError::Failed(format!("the revocation endpoint answered {status}: {said}")))
        }
    }
}

/// A `private_key_jwt` client assertion: `iss = sub = client_id`, `aud` = the token URL,
/// five-minute expiry, a fresh `jti`.
pub fn client_assertion(
    client_id: &str,
    token_url: &str,
    pem: &str,
    algorithm: Algorithm,
    kid: Option<String>,
) -> Result<String, RefreshError> {
    let key = match algorithm {
        Algorithm::RS384 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        other => return Err(RefreshError::Failed(format!("{other:?} client assertions are not supported"))),
    }
    .map_err(|e| RefreshError::Failed(format!("the client key cannot be read: {e}")))?;
    let now = Timestamp::now().millis() / 1000;
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 300
    });
    let mut header = Header::new(algorithm);
    header.kid = kid;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| RefreshError::Failed(e.to_string()))
}
