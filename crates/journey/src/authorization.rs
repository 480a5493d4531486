//! The SMART standalone launch as a confidential client: the authorization request (state,
//! PKCE S256, `aud`), and the callback (state checked first, then the code redeemed with the
//! verifier and this plan's client authentication).

use baton_transfer::{ClientAuth, PayerCredentials};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use thiserror::Error;
use url::Url;

use crate::discovery::Endpoints;
use crate::payers::Payer;

/// How long the member has to sign in and approve at the previous plan.
pub const PENDING_LIFETIME_MS: i64 = 30 * 60 * 1000;

/// An authorization request on its way: kept in the member's session (server side), used once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub state: String,
    pub verifier: String,
    pub payer_id: String,
    pub fhir_base: String,
    pub token_url: String,
    pub redirect_uri: String,
    pub requested_scope: String,
    /// The member's choice on the consent page.
    pub include_sensitive: bool,
    /// When the member agreed on the consent page (milliseconds).
    pub consent_given_at: i64,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("payer_id", &self.payer_id)
            .field("include_sensitive", &self.include_sensitive)
            .field("consent_given_at", &self.consent_given_at)
            .finish_non_exhaustive()
    }
}

/// The URL to send the member to, and what to remember until they come back.
pub fn authorization_request(
    payer: &Payer,
    endpoints: &Endpoints,
    redirect_uri: &Url,
    include_sensitive: bool,
    now_ms: i64,
) -> (Url, PendingAuthorization) {
    let client = oauth2::basic::BasicClient::new(ClientId::new(payer.credentials.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
        .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(endpoints.scope.split_whitespace().map(|s| Scope::new(s.to_owned())))
        .set_pkce_challenge(challenge)
        .add_extra_param("aud", payer.fhir_base.as_str().trim_end_matches('/'))
        .url();
    let pending = PendingAuthorization {
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
        payer_id: payer.id.clone(),
        fhir_base: payer.fhir_base.as_str().trim_end_matches('/').to_owned(),
        token_url: endpoints.token.to_string(),
        redirect_uri: redirect_uri.to_string(),
        requested_scope: endpoints.scope.clone(),
        include_sensitive,
        consent_given_at: now_ms,
    };
    (url, pending)
}

/// What the previous plan sends the member back with (`redirect_uri?…`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// RFC 6749 §4.1.2.1 error codes, as the previous plan returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    /// A code RFC 6749 does not define.
    Other,
}

impl AuthorizationErrorCode {
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "unauthorized_client" => Self::UnauthorizedClient,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            _ => Self::Other,
        }
    }
}

/// Why the callback did not end in tokens. No token request is made for the first four.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallbackError {
    #[error("no authorization was started in this session, or it was already used")]
    NoPendingAuthorization,
    #[error("the state does not match the one this session sent")]
    StateMismatch,
    #[error("the authorization took too long")]
    Expired,
    #[error("the previous plan answered {code:?}: {description}")]
    Refused { code: AuthorizationErrorCode, description: String },
    #[error("the previous plan sent no authorization code")]
    NoCode,
    #[error("the previous plan's token endpoint refused the code: {0}")]
    TokenRefused(String),
    #[error("the previous plan's token endpoint could not be used: {0}")]
    TokenFailed(String),
    #[error("the previous plan granted patient access without saying which patient")]
    NoPatient,
}

impl CallbackError {
    /// Whether the previous plan refused, failed or could not be reached (rather than the
    /// member saying no, or this session's request being stale): staff need to know.
    pub fn is_the_plans(&self) -> bool {
        match self {
            CallbackError::Refused { code, .. } => *code != AuthorizationErrorCode::AccessDenied,
            CallbackError::NoCode
            | CallbackError::TokenRefused(_)
            | CallbackError::TokenFailed(_)
            | CallbackError::NoPatient => true,
            CallbackError::NoPendingAuthorization | CallbackError::StateMismatch | CallbackError::Expired => false,
        }
    }
}

/// The SMART fields of a token response besides the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SmartTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Baton's own authorization server says whether the grant includes sensitive
    /// information (`excluded` or `included`); other servers say nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_data: Option<String>,
}

impl ExtraTokenFields for SmartTokenFields {}

type SmartTokenResponse = StandardTokenResponse<SmartTokenFields, BasicTokenType>;
type SmartClient = oauth2::Client<
    BasicErrorResponse,
    SmartTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// What the member granted.
#[derive(Clone, PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    pub expires_in_ms: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// The scope actually granted (the requested one when the plan did not say).
    pub scope: String,
    pub patient: Option<String>,
    /// What the plan said about sensitive information in this grant, when it said.
    pub sensitive: Option<baton_vocab::SensitiveSharing>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("scope", &self.scope)
            .field("patient", &self.patient)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Checks the state first (no token request unless it matches and is fresh), then redeems the
/// code: form-encoded, with the PKCE verifier, the exact redirect URI and this plan's client
/// authentication (HTTP Basic secret, or a `private_key_jwt` assertion).
pub async fn complete(
    pending: &PendingAuthorization,
    params: &CallbackParams,
    credentials: &PayerCredentials,
    http: &reqwest::Client,
    now_ms: i64,
) -> Result<Granted, CallbackError> {
    let state = params.state.as_deref().ok_or(CallbackError::StateMismatch)?;
    if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err(CallbackError::StateMismatch);
    }
    if now_ms - pending.consent_given_at > PENDING_LIFETIME_MS {
        return Err(CallbackError::Expired);
    }
    if let Some(error) = &params.error {
        return Err(CallbackError::Refused {
            code: AuthorizationErrorCode::parse(error),
            description: params.error_description.clone().unwrap_or_default(),
        });
    }
    let code = params.code.clone().filter(|c| !c.is_empty()).ok_or(CallbackError::NoCode)?;

    let token_url = TokenUrl::new(pending.token_url.clone()).map_err(|e| CallbackError::TokenFailed(e.to_string()))?;
    let redirect =
        RedirectUrl::new(pending.redirect_uri.clone()).map_err(|e| CallbackError::TokenFailed(e.to_string()))?;
    let client = SmartClient::new(ClientId::new(credentials.client_id.clone()))
        .set_token_uri(token_url)
        .set_redirect_uri(redirect);
    let code = AuthorizationCode::new(code);
    let verifier = PkceCodeVerifier::new(pending.verifier.clone());
    let response = match &credentials.auth {
        ClientAuth::Secret(secret) => {
            client
                .set_client_secret(ClientSecret::new(secret.clone()))
                .set_auth_type(AuthType::BasicAuth)
                .exchange_code(code)
                .set_pkce_verifier(verifier)
                .request_async(http)
                .await
        }
        ClientAuth::PrivateKey { pem, algorithm, kid } => {
            let assertion = baton_transfer::auth::client_assertion(
                &credentials.client_id,
                &pending.token_url,
                pem,
                *algorithm,
                kid.clone(),
            )
            .map_err(|e| CallbackError::TokenFailed(e.to_string()))?;
            client
                .set_auth_type(AuthType::RequestBody)
                .exchange_code(code)
                .set_pkce_verifier(verifier)
                .add_extra_param("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                .add_extra_param("client_assertion", assertion)
                .request_async(http)
                .await
        }
    };
    let response = response.map_err(|error| match error {
        RequestTokenError::ServerResponse(e) => CallbackError::TokenRefused(match e.error_description() {
            Some(description) => format!("{}: {description}", e.error()),
            None => e.error().to_string(),
        }),
        RequestTokenError::Request(e) => CallbackError::TokenFailed(format!("the request failed: {e}")),
        RequestTokenError::Parse(e, _) => CallbackError::TokenFailed(format!("the answer could not be read: {e}")),
        RequestTokenError::Other(e) => CallbackError::TokenFailed(e),
    })?;
    let scope = match response.scopes() {
        Some(scopes) => scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
        None => pending.requested_scope.clone(),
    };
    let extra = response.extra_fields();
    let patient = extra.patient.clone().filter(|p| !p.is_empty());
    if patient.is_none() && scope.split_whitespace().any(|s| s.starts_with("patient/")) {
        return Err(CallbackError::NoPatient);
    }
    Ok(Granted {
        access_token: response.access_token().secret().clone(),
        expires_in_ms: response.expires_in().map(|d| d.as_millis() as i64),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        id_token: extra.id_token.clone(),
        scope,
        patient,
        sensitive: extra.sensitive_data.as_deref().and_then(|s| s.parse().ok()),
    })
}
