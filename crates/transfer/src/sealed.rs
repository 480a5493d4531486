//! Tokens at rest: sealed with XChaCha20-Poly1305 (RustCrypto) under the token key from
//! configuration, a fresh random nonce each time. A sealed token is text (base64url of
//! `nonce ‖ ciphertext`); without the key it is useless, and tampering is detected.
//!
//! Sealed for a place ([`TokenCipher::seal_for`], `b1.` before the text), it is bound to it:
//! the place (a link's refresh token, an invitation) is authenticated data, so a sealed value
//! copied to another row does not open there. Values sealed before binding existed open as
//! they were sealed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305, XNonce};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a sealed token could not be opened (wrong key, or tampered with)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens tokens with one key.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(***)")
    }
}

/// Marks a value sealed for a place.
const BOUND: &str = "b1.";

impl TokenCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    pub fn seal(&self, token: &str) -> Result<String, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, token.as_bytes()).map_err(|_| SealError::Seal)?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Seals `token` bound to `place` (such as [`baton_store::PayerLink::token_place`]): it opens
    /// only for that place.
    pub fn seal_for(&self, token: &str, place: &str) -> Result<String, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: token.as_bytes(), aad: place.as_bytes() };
        let sealed = self.cipher.encrypt(&nonce, payload).map_err(|_| SealError::Seal)?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(format!("{BOUND}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens what was sealed for `place` (or, from before binding, sealed for no place).
    pub fn open_for(&self, sealed: &str, place: &str) -> Result<String, SealError> {
        let Some(bound) = sealed.strip_prefix(BOUND) else { return self.open(sealed) };
        let bytes = URL_SAFE_NO_PAD.decode(bound).map_err(|_| SealError::Open)?;
        if bytes.len() < 24 {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let payload = Payload { msg: ciphertext, aad: place.as_bytes() };
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }

    /// Opens a value sealed for no place.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| SealError::Open)?;
        if bytes.len() < 24 {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let cipher = TokenCipher::new(&[7; 32]);
        let a = cipher.seal("access-token-123").unwrap();
        let b = cipher.seal("access-token-123").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("access-token"));
        assert_eq!(cipher.open(&a).unwrap(), "access-token-123");
    }

    #[test]
    fn a_value_sealed_for_one_place_does_not_open_in_another() {
        let cipher = TokenCipher::new(&[7; 32]);
        let place = baton_store::PayerLink::token_place;
        let sealed = cipher.seal_for("refresh-1", &place("link-a", "refresh")).unwrap();
        assert_eq!(cipher.open_for(&sealed, &place("link-a", "refresh")).unwrap(), "refresh-1");
        assert_eq!(cipher.open_for(&sealed, &place("link-b", "refresh")), Err(SealError::Open));
        assert_eq!(cipher.open_for(&sealed, &place("link-a", "access")), Err(SealError::Open));
        assert_eq!(cipher.open(&sealed), Err(SealError::Open), "not without its place");
        // Sealed before places existed: still opens.
        let old = cipher.seal("refresh-0").unwrap();
        assert_eq!(cipher.open_for(&old, &place("link-a", "refresh")).unwrap(), "refresh-0");
    }

    #[test]
    fn wrong_key_or_tampering_is_detected() {
        let sealed = TokenCipher::new(&[7; 32]).seal("secret").unwrap();
        assert_eq!(TokenCipher::new(&[8; 32]).open(&sealed), Err(SealError::Open));
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(TokenCipher::new(&[7; 32]).open(&String::from_utf8(tampered).unwrap()), Err(SealError::Open));
        assert_eq!(TokenCipher::new(&[7; 32]).open("short"), Err(SealError::Open));
    }
}
