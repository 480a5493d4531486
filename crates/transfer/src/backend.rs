//! This plan as a SMART Backend Services client of other plans (the Payer-to-Payer API): its
//! key pair — RS384 with an RSA key, ES384 with a P-384 key — whose public half other plans
//! register (Baton publishes it at `/p2p/jwks.json`), and the `client_credentials` token
//! request with a signed assertion (`private_key_jwt`).

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, RequestTokenError, Scope, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::auth::client_assertion;

/// This plan's Backend Services key.
#[derive(Clone)]
pub struct BackendKey {
    pem: SecretString,
    algorithm: Algorithm,
    kid: String,
    public: Jwk,
}

impl std::fmt::Debug for BackendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendKey({:?}, kid={})", self.algorithm, self.kid)
    }
}

#[derive(Debug, Error)]
pub enum BackendKeyError {
    #[error("the Backend Services key is neither an RSA nor a P-384 private key in PEM")]
    InvalidPem,
}

impl BackendKey {
    /// A key from a private key in PEM: RSA (signs RS384) or P-384 (signs ES384). Its `kid` is
    /// the public key's JWK thumbprint, so it changes exactly when the key does.
    pub fn from_pem(pem: &str) -> Result<Self, BackendKeyError> {
        let (encoding, algorithm, key_algorithm) = if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            (key, Algorithm::RS384, KeyAlgorithm::RS384)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            (key, Algorithm::ES384, KeyAlgorithm::ES384)
        } else {
            return Err(BackendKeyError::InvalidPem);
        };
        let mut public = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| BackendKeyError::InvalidPem)?;
        let kid = public.thumbprint(ThumbprintHash::SHA256).map_err(|_| BackendKeyError::InvalidPem)?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(key_algorithm);
        Ok(Self { pem: pem.to_owned().into(), algorithm, kid, public })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half, as the JWK Set other plans register.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public.clone()] }
    }

    /// A fresh client assertion for `client_id` at `token_url` (five minutes, a new `jti`).
    pub fn assertion(&self, client_id: &str, token_url: &str) -> Result<String, TokenError> {
        client_assertion(client_id, token_url, self.pem.expose_secret(), self.algorithm, Some(self.kid.clone()))
            .map_err(|e| TokenError::Failed(e.to_string()))
    }
}

/// This plan's registration at another plan for the Payer-to-Payer API.
#[derive(Debug, Clone)]
pub struct BackendCredentials {
    pub client_id: String,
    pub key: BackendKey,
    /// The scopes asked for (the other plan grants what it registered of them).
    pub scope: String,
    /// How a member's Consent names that plan (`system|value`, its NAIC company code where
    /// known); none: by its FHIR base.
    pub payer_identifiers: Vec<String>,
    /// A pinned token endpoint for this system; otherwise the one the plan's FHIR base's SMART
    /// configuration names.
    pub token_url: Option<String>,
}

/// A token from `client_credentials`.
#[derive(Debug, Clone)]
pub struct SystemToken {
    pub access_token: String,
    /// Milliseconds since the epoch, when the plan said.
    pub expires_at: Option<i64>,
    /// What it granted (what was asked, when it did not say).
    pub scope: String,
}

#[derive(Debug, Error)]
pub enum TokenError {
    /// The other plan refused this plan's registration or scopes: no retry helps.
    #[error("the other plan refused this plan's system ({0})")]
    Refused(String),
    /// It could not be asked or did not answer as OAuth says.
    #[error("the other plan's token endpoint did not answer: {0}")]
    Failed(String),
}

/// Asks `token_url` for a system token (`grant_type=client_credentials`, `private_key_jwt`).
pub async fn system_token(
    http: &reqwest::Client,
    credentials: &BackendCredentials,
    token_url: &str,
    now_millis: i64,
) -> Result<SystemToken, TokenError> {
    let url = TokenUrl::new(token_url.to_owned()).map_err(|e| TokenError::Failed(e.to_string()))?;
    let assertion = credentials.key.assertion(&credentials.client_id, token_url)?;
    let client = BasicClient::new(ClientId::new(credentials.client_id.clone()))
        .set_token_uri(url)
        .set_auth_type(AuthType::RequestBody);
    let response = client
        .exchange_client_credentials()
        .add_scopes(credentials.scope.split_whitespace().map(|s| Scope::new(s.to_owned())))
        .add_extra_param("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .add_extra_param("client_assertion", assertion)
        .request_async(http)
        .await
        .map_err(|error| match error {
            RequestTokenError::ServerResponse(e)
                if matches!(
                    e.error(),
                    BasicErrorResponseType::InvalidClient
                        | BasicErrorResponseType::InvalidScope
                        | BasicErrorResponseType::UnauthorizedClient
                ) =>
            {
                let description = e.error_description().map(|d| format!(": {d}")).unwrap_or_default();
                TokenError::Refused(format!("{}{description}", e.error()))
            }
            other => TokenError::Failed(other.to_string()),
        })?;
    let scope = response.scopes().map_or_else(
        || credentials.scope.clone(),
        |granted| granted.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "),
    );
    Ok(SystemToken {
        access_token: response.access_token().secret().clone(),
        expires_at: response.expires_in().map(|d| now_millis + d.as_millis() as i64),
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_key_signs_rs384_and_publishes_only_its_public_half() {
        let pem = {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap().to_pkcs8_pem(LineEnding::LF).unwrap()
        };
        let key = BackendKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), Algorithm::RS384);
        let published = serde_json::to_value(key.jwks()).unwrap();
        assert_eq!(published["keys"][0]["kid"], key.kid());
        assert_eq!(published["keys"][0]["alg"], "RS384");
        assert!(published["keys"][0].get("d").is_none(), "never the private part");
        let assertion = key.assertion("cedar-valley", "https://old.example/oauth/token").unwrap();
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::RS384, Some(key.kid())));
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(BackendKey::from_pem("not a key").is_err());
    }
}
