//! Password hashing with argon2id (RustCrypto `argon2`, OWASP default parameters).
//!
//! Hashing costs tens of milliseconds of CPU by design, so the async functions run it on
//! tokio's blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use thiserror::Error;

/// Longest password accepted (argon2 would take more, but nobody types this much).
pub const MAX_LENGTH: usize = 1024;
/// Shortest new password.
pub const MIN_LENGTH: usize = 10;

/// A password someone wants to set: 10 to 1024 characters, not only spaces.
#[derive(Clone)]
pub struct NewPassword(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordError {
    #[error("a password has at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("a password has at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("the stored password hash is unreadable")]
    Unreadable,
    #[error("password hashing failed")]
    Hashing,
}

impl NewPassword {
    pub fn parse(input: &str) -> Result<Self, PasswordError> {
        let length = input.chars().count();
        if input.trim().chars().count() < MIN_LENGTH {
            return Err(PasswordError::TooShort);
        }
        if length > MAX_LENGTH {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Hashes a password to a PHC string (`$argon2id$v=19$…`) with a random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|_| PasswordError::Hashing)
}

/// Checks a password against a PHC string.
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::Unreadable)?;
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: NewPassword) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(password.expose())).await.map_err(|_| PasswordError::Hashing)?
}

/// [`verify`] on the blocking pool. With no stored hash (unknown account, or no password set
/// yet) it verifies against a fixed dummy hash and returns `false`, so that the answer takes
/// the same time either way and reveals nothing about which accounts exist.
pub async fn verify_async(password: String, phc: Option<String>) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            let _ = verify(&password, dummy_hash());
            Ok(false)
        }
    })
    .await
    .map_err(|_| PasswordError::Hashing)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("not a real password, only for equal timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery staple").unwrap();
        let b = hash("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery staple", &a).unwrap());
        assert!(!verify("correct horse battery stapl", &a).unwrap());
        assert_eq!(verify("x", "not a phc string"), Err(PasswordError::Unreadable));
    }

    #[test]
    fn new_passwords_have_a_minimum_and_maximum_length() {
        assert_eq!(NewPassword::parse("short").unwrap_err(), PasswordError::TooShort);
        assert_eq!(NewPassword::parse("          x").unwrap_err(), PasswordError::TooShort);
        assert_eq!(NewPassword::parse(&"x".repeat(MAX_LENGTH + 1)).unwrap_err(), PasswordError::TooLong);
        assert!(NewPassword::parse("long enough pw").is_ok());
        assert_eq!(format!("{:?}", NewPassword::parse("long enough pw").unwrap()), "NewPassword(***)");
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        assert!(!verify_async("anything".into(), None).await.unwrap());
        let real = hash_async(NewPassword::parse("a real password").unwrap()).await.unwrap();
        assert!(verify_async("a real password".into(), Some(real)).await.unwrap());
    }
}
