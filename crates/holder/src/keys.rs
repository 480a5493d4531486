//! The key that signs this plan's ID tokens (RS256), and its public JWK Set.

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("the ID token key is not a valid RSA private key in PEM: {0}")]
    InvalidPem(String),
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
    #[error("cannot sign: {0}")]
    Sign(String),
}

#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public: Jwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid={})", self.kid)
    }
}

impl SigningKey {
    /// A key from an RSA private key in PEM (PKCS#1 or PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        let mut public =
            Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        let kid = public.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self { encoding, public, kid })
    }

    /// A new 2048-bit RSA private key, as PKCS#8 PEM.
    pub fn generate_pem() -> Result<String, KeyError> {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| KeyError::Generate(e.to_string()))?;
        key.to_pkcs8_pem(LineEnding::LF).map(|pem| pem.to_string()).map_err(|e| KeyError::Generate(e.to_string()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// The public half, as a JWK Set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public.clone()] }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    /// One generated key per test process (generation takes a moment).
    pub fn test_key() -> SigningKey {
        static PEM: OnceLock<String> = OnceLock::new();
        SigningKey::from_pem(PEM.get_or_init(|| SigningKey::generate_pem().unwrap())).unwrap()
    }

    #[test]
    fn signs_tokens_its_published_key_verifies() {
        let key = test_key();
        let token = key.sign(&serde_json::json!({"sub": "p1", "exp": 4_000_000_000u64, "aud": "x"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let jwk = key.jwks().find(key.kid()).unwrap().clone();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["x"]);
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
                .unwrap();
        assert_eq!(decoded.claims["sub"], "p1");
        let published = serde_json::to_value(key.jwks()).unwrap();
        assert!(published["keys"][0].get("d").is_none(), "never the private part");
    }

    #[test]
    fn bad_pem_is_refused() {
        assert!(matches!(SigningKey::from_pem("not a key"), Err(KeyError::InvalidPem(_))));
    }
}
